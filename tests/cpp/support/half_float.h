// half_float.h — fp16 / bf16 <-> float conversions for the test tree.
//
// Why our own: the tests must not share code with the library, and the same-precision reference
// needs "round this value to the input dtype" exactly as storing it would. Both conversions
// round to nearest, ties to even, like hardware stores do.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace fptest {

inline uint32_t float_to_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

inline float bits_to_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
inline uint16_t float_to_half_bits(float value) {
  const uint32_t bits = float_to_bits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return sign | 0x7E00u;  // NaN stays NaN
  if (magnitude >= 0x47800000u) return sign | 0x7C00u; // >= 2^16 (or inf): infinity
  if (magnitude < 0x38800000u) {
    // Below the smallest normal 2^-14: a multiple of 2^-24. Scaling by 2^24 is exact in float,
    // and nearbyint rounds half to even in the default rounding mode.
    const float scaled = std::fabs(value) * 16777216.0f;
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  const uint32_t half_exponent = (magnitude >> 23) - 127u + 15u;
  const uint32_t mantissa = magnitude & 0x7FFFFFu;
  uint32_t result = (half_exponent << 10) | (mantissa >> 13);
  const uint32_t remainder = mantissa & 0x1FFFu;
  // A carry out of the mantissa correctly bumps the exponent (and reaches infinity at the top).
  if (remainder > 0x1000u || (remainder == 0x1000u && (result & 1u))) ++result;
  return static_cast<uint16_t>(sign | result);
}

inline float half_bits_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1Fu;
  const uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return bits_to_float(sign | 0x7F800000u | (mantissa << 13));
  return bits_to_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// bfloat16: the top 16 bits of a float.
inline uint16_t float_to_bf16_bits(float value) {
  const uint32_t bits = float_to_bits(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  const uint32_t rounding_bias = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

inline float bf16_bits_to_float(uint16_t bf16) {
  return bits_to_float(static_cast<uint32_t>(bf16) << 16);
}

inline double round_to_half(double value) {
  return half_bits_to_float(float_to_half_bits(static_cast<float>(value)));
}

inline double round_to_bf16(double value) {
  return bf16_bits_to_float(float_to_bf16_bits(static_cast<float>(value)));
}

}  // namespace fptest
