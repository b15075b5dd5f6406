// The test tree's own fp16 / bf16 conversions: every half value round-trips, and rounding from
// float is to nearest with ties to even, including subnormals and overflow to infinity.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "support/half_float.h"

namespace {

using namespace fptest;

TEST(HalfFloat, EveryHalfRoundTrips) {
  for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const float value = half_bits_to_float(static_cast<uint16_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(float_to_half_bits(value), bits) << std::hex << bits;
  }
}

TEST(HalfFloat, KnownValues) {
  EXPECT_EQ(float_to_half_bits(1.0f), 0x3C00u);
  EXPECT_EQ(float_to_half_bits(-2.0f), 0xC000u);
  EXPECT_EQ(float_to_half_bits(65504.0f), 0x7BFFu);
  EXPECT_EQ(float_to_half_bits(65520.0f), 0x7C00u);  // the tie above the largest half: infinity
  EXPECT_EQ(float_to_half_bits(65519.0f), 0x7BFFu);
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.0f, -24)), 0x0001u);
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.0f, -25)), 0x0000u);    // tie to even: zero
  EXPECT_EQ(float_to_half_bits(std::ldexp(3.0f, -25)), 0x0002u);    // tie to even: 2
  EXPECT_EQ(float_to_half_bits(1.0f + std::ldexp(1.0f, -11)), 0x3C00u);  // tie to even
  EXPECT_EQ(float_to_half_bits(1.0f + std::ldexp(3.0f, -11)), 0x3C02u);  // tie to even
  EXPECT_EQ(float_to_half_bits(std::numeric_limits<float>::infinity()), 0x7C00u);
  EXPECT_TRUE(std::isnan(half_bits_to_float(float_to_half_bits(std::nanf("")))));
  EXPECT_EQ(half_bits_to_float(0x3555u), 0.333251953125f);
}

TEST(Bfloat16, RoundingAndRoundTrip) {
  for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const float value = bf16_bits_to_float(static_cast<uint16_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(float_to_bf16_bits(value), bits);
  }
  EXPECT_EQ(float_to_bf16_bits(1.0f), 0x3F80u);
  EXPECT_EQ(float_to_bf16_bits(bits_to_float(0x3F808000u)), 0x3F80u);  // tie to even (down)
  EXPECT_EQ(float_to_bf16_bits(bits_to_float(0x3F818000u)), 0x3F82u);  // tie to even (up)
  EXPECT_EQ(float_to_bf16_bits(bits_to_float(0x3F808001u)), 0x3F81u);
  EXPECT_TRUE(std::isnan(bf16_bits_to_float(float_to_bf16_bits(std::nanf("")))));
}

}  // namespace
