// dropout_sm80.cuh — the dropout keep-mask of one accumulator fragment.
//
// The mask is src/common/dropout_philox.h's (bit-identical to the CPU backend): entry (i, j) of
// head (b * h_q + h) is kept iff Philox word (j & 3) of counter (j >> 2, i, b * h_q + h,
// offset_lo) <= threshold. An mma.sync accumulator gives each lane column pairs (j, j + 1) with j
// even, so one Philox call covers two entries.
#pragma once

#include <cstdint>

#include <cute/tensor.hpp>

#include "common/dropout_philox.h"

namespace flashplus {
namespace kernels {

// The Philox words behind a real call. Inlined into a kernel (even in a rolled loop) the ten
// unrolled rounds made ptxas fall back to a 32-register allocation with kilobytes of spills for
// the whole kernel; as a call it costs a few instructions per 2 entries.
static __device__ __noinline__ PhiloxWords dropout_words(DropoutStream stream, uint32_t batch_head, uint32_t row,
                                                         uint32_t col) {
  return stream.words(batch_head, row, col);
}

// Keep bits of a fragment given its coordinates as a rowcol view (rows, cols); bit r * cols + c.
// The Philox calls run in a rolled loop; callers apply the bits in unrolled loops.
template <typename Coords>
__device__ __forceinline__ uint64_t dropout_keep_bits(const Coords& coords_rc, const DropoutStream& dropout,
                                                      uint32_t batch_head, int m0, int n0) {
  using namespace cute;
  constexpr int kRows = decltype(size<0>(coords_rc))::value;
  constexpr int kCols = decltype(size<1>(coords_rc))::value;
  static_assert(kCols % 2 == 0 && kRows * kCols <= 64, "keep bits fit one 64-bit word");
  uint64_t keep_bits = 0;
#pragma unroll 1
  for (int pair = 0; pair < kRows * kCols / 2; ++pair) {
    const int r = pair / (kCols / 2);
    const int c = (pair % (kCols / 2)) * 2;
    const uint32_t i = static_cast<uint32_t>(m0 + get<0>(coords_rc(r, c)));
    const uint32_t j = static_cast<uint32_t>(n0 + get<1>(coords_rc(r, c)));
    const PhiloxWords words = dropout_words(dropout, batch_head, i, j);
    // j is even, so the pair is words (0, 1) or (2, 3); no run-time array index (local memory).
    const bool upper = (j & 2u) != 0;
    const uint32_t word0 = upper ? words.w[2] : words.w[0];
    const uint32_t word1 = upper ? words.w[3] : words.w[1];
    const uint64_t pair_bits = (word0 <= dropout.threshold ? 1u : 0u) | (word1 <= dropout.threshold ? 2u : 0u);
    keep_bits |= pair_bits << (2 * pair);
  }
  return keep_bits;
}

}  // namespace kernels
}  // namespace flashplus
