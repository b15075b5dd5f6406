// logit_tile.cuh — the logit rule (mask.cuh) applied to one tile of scores in registers, shared
// by the sm80 and sm90 forward kernels. The tile arrives as a rowcol view (fragment_layout.cuh)
// with a matching view of each element's (row, column) coordinates in the tile.
#pragma once

#include <cmath>

#include <cute/tensor.hpp>

#include "mask.cuh"

namespace flashplus {
namespace kernels {

// True when apply_logit_rule<kSoftcap, kExact> leaves the scores raw (interior tiles without
// softcap): the softmax then applies the scale inside its exponent (softmax_online.cuh).
template <bool kSoftcap, bool kExact>
constexpr bool kRawScores = !kSoftcap && !kExact;

// Rewrites raw dot products as base-2 logits, in place (not called for interior tiles without
// softcap, kRawScores, whose scores stay raw). scores_rc / coords_rc: rowcol views; row_query[r]:
// the query index (within the sequence) of this thread's row r.
//
// Softcap and "exact" are compile-time policies, because a runtime flag here is not a branch in
// practice: ptxas if-converted a runtime softcap test into predicated tanh code that every tile paid
// for (~1400 issued instructions per 128 x 64 tile, about the cost of its 256 MMAs). kExact tiles
// (sequence end, causal / window edge, or any ALiBi) apply the per-element rules.
template <bool kSoftcap, bool kExact, bool kAlibi, typename Scores, typename Coords, int kRows>
__device__ __forceinline__ void apply_logit_rule(Scores& scores_rc, const Coords& coords_rc, const LogitRule& rule,
                                                 const WindowMask& mask, const int (&row_query)[kRows], int n0) {
  using namespace cute;
  constexpr int kCols = decltype(size<1>(scores_rc))::value;
  static_assert(decltype(size<0>(scores_rc))::value == kRows);
  static_assert(!kRawScores<kSoftcap, kExact>);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      if constexpr (kSoftcap) {
        scores_rc(r, c) = rule.softcap_outer * tanhf(scores_rc(r, c) * rule.softcap_inner);
      } else {
        scores_rc(r, c) *= rule.scale_log2;
      }
    }
  }
  if constexpr (kExact) {
    if constexpr (kAlibi) {  // compile-time: as a runtime test ptxas if-converted it into every exact tile
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int c = 0; c < kCols; ++c) {
          const int j = n0 + get<1>(coords_rc(r, c));
          scores_rc(r, c) -= rule.slope_log2 * static_cast<float>(abs(row_query[r] + rule.diagonal - j));
        }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      int lo, hi;
      mask.visible_keys(row_query[r], lo, hi);
      lo -= n0;  // as tile columns
      hi -= n0;
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        const int col = get<1>(coords_rc(r, c));
        scores_rc(r, c) = col >= lo && col < hi ? scores_rc(r, c) : -INFINITY;
      }
    }
  }
}

}  // namespace kernels
}  // namespace flashplus
