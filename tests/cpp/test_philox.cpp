// The oracle's Philox4x32-10 against the published known-answer vectors, and against the
// library's dropout_philox.h bit for bit (generator, key / counter layout and keep threshold).
// This is the only test that includes a library header other than the public one: its purpose
// is to compare the two independent implementations.
#include <gtest/gtest.h>

#include <random>

#include "common/dropout_philox.h"
#include "oracle/philox_reference.h"

namespace {

using oracle::philox4x32;
using oracle::PhiloxCounter;

TEST(Philox, KnownAnswerVectorsOfRandom123) {
  // Random123 tests/kat_vectors, "philox4x32 10" lines: counter, key, expected output.
  EXPECT_EQ(philox4x32({0, 0, 0, 0}, {0, 0}),
            (PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                       {0xffffffffu, 0xffffffffu}),
            (PhiloxCounter{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox4x32({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                       {0xa4093822u, 0x299f31d0u}),
            (PhiloxCounter{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(Philox, LibraryGeneratorAgreesBitForBit) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 20000; ++trial) {
    const uint32_t c0 = rng(), c1 = rng(), c2 = rng(), c3 = rng(), k0 = rng(), k1 = rng();
    const flashplus::PhiloxWords library = flashplus::philox4x32_10(c0, c1, c2, c3, k0, k1);
    const PhiloxCounter ours = philox4x32({c0, c1, c2, c3}, {k0, k1});
    for (int w = 0; w < 4; ++w) ASSERT_EQ(library.w[w], ours[w]) << "trial " << trial;
  }
}

TEST(Philox, KeepThresholdAgrees) {
  for (float p : {0.0f, 1e-9f, 0.1f, 0.17f, 0.25f, 0.5f, 0.9f, 0.999999f, 0.99999999f})
    EXPECT_EQ(flashplus::dropout_keep_threshold(p), oracle::DropoutMaskReference::keep_threshold(p))
        << "p = " << p;
  EXPECT_EQ(oracle::DropoutMaskReference::keep_threshold(0.0), 0xFFFFFFFFu);
  EXPECT_EQ(oracle::DropoutMaskReference::keep_threshold(0.5), 0x80000000u);
}

TEST(Philox, DropoutStreamLayoutAgrees) {
  std::mt19937_64 rng(12);
  for (int trial = 0; trial < 200; ++trial) {
    const uint64_t seed = rng(), offset = (trial % 2) ? rng() : (rng() & 0xFFFFFFFFu);
    const float p = static_cast<float>(trial % 9) / 10.0f;
    const flashplus::DropoutStream library = flashplus::DropoutStream::make(seed, offset, p);
    const oracle::DropoutMaskReference ours(seed, offset, p);
    ASSERT_EQ(library.threshold, ours.threshold());
    for (int probe = 0; probe < 50; ++probe) {
      const uint32_t batch_head = rng() % 64, row = rng() % 5000, col = rng() % 5000;
      ASSERT_EQ(library.keep(batch_head, row, col), ours.keep(batch_head, row, col))
          << "seed " << seed << " offset " << offset << " (" << batch_head << ", " << row << ", "
          << col << ")";
      ASSERT_EQ(library.words(batch_head, row, col).w[col & 3u], ours.word(batch_head, row, col));
    }
  }
}

TEST(Philox, KeepFractionMatchesProbability) {
  // A sanity check of the mask itself: over 64k entries the kept fraction is 1 - p within 1%.
  for (double p : {0.1, 0.5, 0.8}) {
    const oracle::DropoutMaskReference mask(99, 7, p);
    int kept = 0;
    const int rows = 256, cols = 256;
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) kept += mask.keep(3, i, j);
    EXPECT_NEAR(static_cast<double>(kept) / (rows * cols), 1.0 - p, 0.01) << "p = " << p;
  }
}

TEST(Philox, OffsetHighWordChangesTheKey) {
  const oracle::DropoutMaskReference low(5, 0x0000000000000009ULL, 0.5);
  const oracle::DropoutMaskReference high(5, 0x0000000100000009ULL, 0.5);
  int differ = 0;
  for (uint32_t j = 0; j < 256; ++j) differ += low.word(0, 0, j) != high.word(0, 0, j);
  EXPECT_GT(differ, 200);
}

}  // namespace
