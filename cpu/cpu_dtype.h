// cpu_dtype.h — fp16 / bf16 / fp32 element access for the CPU backend.
//
// The CPU backend computes in fp32 whatever the storage dtype; these helpers convert one row of
// `n` contiguous elements at a time (the feature dimension is always contiguous), with
// round-to-nearest-even on the way back, matching what the CUDA kernels' conversions do.
#pragma once

#include <cstdint>
#include <cstring>

#include "flashplus/flashplus.h"

namespace flashplus {
namespace cpu {

inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  const uint32_t mantissa = h & 0x3FFu;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal half: renormalise into a normal float
      int shift = 0;
      uint32_t m = mantissa;
      while ((m & 0x400u) == 0) { m <<= 1; ++shift; }
      bits = sign | (static_cast<uint32_t>(113 - shift) << 23) | ((m & 0x3FFu) << 13);
    }
  } else if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

inline uint16_t float_to_half_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0));
  if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds past 65504
  if (abs < 0x38800000u) {  // half subnormal: value = m * 2^-24, so m = round(|f| * 2^24)
    if (abs <= 0x33000000u) return static_cast<uint16_t>(sign);  // <= 2^-25 rounds to (even) zero
    const uint32_t exponent = abs >> 23;
    const uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // in [14, 24]
    const uint32_t kept = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t half_way = 1u << (shift - 1);
    const uint32_t result = kept + ((rest > half_way || (rest == half_way && (kept & 1u))) ? 1u : 0u);
    return static_cast<uint16_t>(sign | result);
  }
  uint32_t result = ((abs - 0x38000000u) >> 13);
  const uint32_t rest = abs & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) ++result;
  return static_cast<uint16_t>(sign | result);
}

inline float bf16_bits_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

inline uint16_t float_to_bf16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  const uint32_t rounding = 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

inline size_t element_size(flashplus_dtype dtype) { return dtype == FLASHPLUS_DTYPE_FLOAT32 ? 4 : 2; }

inline const void* element_ptr(const void* base, flashplus_dtype dtype, int64_t offset) {
  return static_cast<const char*>(base) + offset * static_cast<int64_t>(element_size(dtype));
}
inline void* element_ptr(void* base, flashplus_dtype dtype, int64_t offset) {
  return static_cast<char*>(base) + offset * static_cast<int64_t>(element_size(dtype));
}

inline void load_row(const void* src, flashplus_dtype dtype, int n, float* dst) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT32: std::memcpy(dst, src, sizeof(float) * n); break;
    case FLASHPLUS_DTYPE_FLOAT16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int i = 0; i < n; ++i) dst[i] = half_bits_to_float(s[i]);
      break;
    }
    default: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int i = 0; i < n; ++i) dst[i] = bf16_bits_to_float(s[i]);
      break;
    }
  }
}

inline void store_row(const float* src, int n, void* dst, flashplus_dtype dtype) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT32: std::memcpy(dst, src, sizeof(float) * n); break;
    case FLASHPLUS_DTYPE_FLOAT16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int i = 0; i < n; ++i) d[i] = float_to_half_bits(src[i]);
      break;
    }
    default: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int i = 0; i < n; ++i) d[i] = float_to_bf16_bits(src[i]);
      break;
    }
  }
}

inline void store_value(float value, void* dst, flashplus_dtype dtype) { store_row(&value, 1, dst, dtype); }

}  // namespace cpu
}  // namespace flashplus
