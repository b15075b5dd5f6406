// softmax_online.cuh — the running (online) softmax of one query tile, in the base-2 domain.
//
// For each key tile the scores s (already log2(e) * logit, -inf where masked) become
// p = exp2(s - m) with m the running row max; earlier output and row sums are rescaled by
// exp2(m_old - m_new). A row that has seen only masked keys keeps m = -inf: it uses 0 as the
// exponent base (so p = 0, never NaN) and finishes with out = 0 and LSE = +inf.
//
// Each row's values are spread over a quad of 4 lanes (fragment_layout_sm80.cuh): the max is
// reduced across the quad at every step, the sum only once at the end (the per-lane partial sums
// see identical rescaling factors, so they can be added late).
#pragma once

#include <cmath>

#include "mask.cuh"

namespace flashplus {
namespace kernels {

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

template <int kRows>
struct OnlineSoftmax {
  float row_max[kRows];
  float row_sum[kRows];  // this lane's part until finalize()

  __device__ __forceinline__ OnlineSoftmax() {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      row_max[r] = -INFINITY;
      row_sum[r] = 0.f;
    }
  }

  // scores: (kRows, cols) view, replaced by unnormalised probabilities. out: (kRows, d) view of
  // the output accumulator, rescaled to the new row max.
  template <typename Scores, typename Out>
  __device__ __forceinline__ void step(Scores& scores, Out& out) {
    static_assert(decltype(cute::size<0>(scores))::value == kRows);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float m = row_max[r];
#pragma unroll
      for (int c = 0; c < cute::size<1>(scores); ++c) m = fmaxf(m, scores(r, c));
      m = quad_max(m);
      const float base = m == -INFINITY ? 0.f : m;
      const float rescale = exp2f(row_max[r] - base);
      row_max[r] = m;
      row_sum[r] *= rescale;
#pragma unroll
      for (int c = 0; c < cute::size<1>(out); ++c) out(r, c) *= rescale;
      float sum = 0.f;
#pragma unroll
      for (int c = 0; c < cute::size<1>(scores); ++c) {
        const float prob = exp2f(scores(r, c) - base);
        scores(r, c) = prob;
        sum += prob;
      }
      row_sum[r] += sum;
    }
  }

  // Normalises out (times out_scale, e.g. the dropout 1 / (1 - p)) and returns each row's LSE in
  // natural log; +inf for rows that saw no key.
  template <typename Out>
  __device__ __forceinline__ void finalize(Out& out, float out_scale, float (&lse)[kRows]) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float sum = quad_sum(row_sum[r]);
      const bool saw_no_key = row_max[r] == -INFINITY;
      const float scale = saw_no_key ? 0.f : out_scale / sum;
      lse[r] = saw_no_key ? INFINITY : (row_max[r] + log2f(sum)) * kLn2;
#pragma unroll
      for (int c = 0; c < cute::size<1>(out); ++c) out(r, c) *= scale;
    }
  }
};

}  // namespace kernels
}  // namespace flashplus
