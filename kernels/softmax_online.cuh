// softmax_online.cuh — the running (online) softmax of one query tile, in the base-2 domain.
//
// For each key tile the scores s become p = exp2(k s - m), with k the tile's score scale (log2(e)
// times the softmax scale for raw dot products, 1 for scores already turned into base-2 logits by
// the exact rule or softcap) and m the running row max of k s; earlier output and row sums are
// rescaled by exp2(m_old - m_new). Taking the max of the raw scores and applying k inside the
// exponent's argument makes the per-element work one FFMA and one MUFU.EX2 (k > 0 keeps the max). A row that has seen only masked keys keeps m = -inf: it uses 0 as the
// exponent base (so p = 0, never NaN) and finishes with out = 0 and LSE = +inf.
//
// Each row's values are spread over a quad of 4 lanes (fragment_layout.cuh): the max is
// reduced across the quad at every step, the sum only once at the end (the per-lane partial sums
// see identical rescaling factors, so they can be added late).
#pragma once

#include <cmath>

#include "mask.cuh"

namespace flashplus {
namespace kernels {

// 2^x with the hardware approximation (relative error ~2^-22), denormal results flushed to zero.
// exp2f without fast-math wraps MUFU.EX2 in a range test and two conditional multiplies (four
// instructions per element, a tenth of the forward's issue slots); probabilities below 2^-126 of
// the row max change nothing next to a row sum >= 1.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

struct fmaxf_op {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct plus_op {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};

// op over value(0) .. value(kCount - 1) as a balanced tree (depth log2 kCount instead of kCount - 1).
template <int kCount, typename Value, typename Op>
__device__ __forceinline__ float tree_reduce(Value value, Op op, int first = 0) {
  if constexpr (kCount == 1) {
    return value(first);
  } else {
    constexpr int kHalf = kCount / 2;
    return op(tree_reduce<kHalf>(value, op, first), tree_reduce<kCount - kHalf>(value, op, first + kHalf));
  }
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

  // scores: (kRows, cols) view, replaced by unnormalised probabilities; score_scale: k above
  // (> 0). out: (kRows, d) view of the output accumulator, rescaled to the new row max.
  template <typename Scores, typename Out>
  __device__ __forceinline__ void step(Scores& scores, Out& out, float score_scale) {
    float out_rescale[kRows];
    update(scores, score_scale, out_rescale);
    rescale(out, out_rescale);
  }

  // step() in two halves, for a kernel that overlaps this tile's softmax with the P V MMA of the
  // previous tile (fwd_kernel_sm90.cuh): update() turns the scores into probabilities and returns
  // per row the factor by which the output accumulated so far must be rescaled; rescale() applies
  // it, once that MMA has finished writing the output.
  template <typename Scores>
  __device__ __forceinline__ void update(Scores& scores, float score_scale, float* out_rescale) {
    constexpr int kCols = decltype(cute::size<1>(scores))::value;
    float m[kRows];
    tile_row_max(scores, m);
    float base[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float new_max = fmaxf(row_max[r], m[r] * score_scale);
      base[r] = new_max == -INFINITY ? 0.f : new_max;
      out_rescale[r] = fast_exp2(row_max[r] - base[r]);
      row_max[r] = new_max;
      row_sum[r] *= out_rescale[r];
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
#pragma unroll
      for (int c = 0; c < kCols; ++c) scores(r, c) = fast_exp2(fmaf(scores(r, c), score_scale, -base[r]));
      row_sum[r] += tree_reduce<kCols>([&](int c) { return scores(r, c); }, plus_op{});
    }
  }

  template <typename Out>
  __device__ __forceinline__ static void rescale(Out& out, const float* out_rescale) {
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int c = 0; c < cute::size<1>(out); ++c) out(r, c) *= out_rescale[r];
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

 private:
  // This tile's row max over the quad. Phase by phase over all rows, and the reductions as trees,
  // so that independent rows and halves fill each other's latencies: row by row with a linear max,
  // the chain of 16 dependent FMNMX per row and the shuffles' round trips were ~18% of the
  // forward's stall samples (Nsight Compute, H200, d = 128, s = 4096).
  template <typename Scores>
  __device__ __forceinline__ static void tile_row_max(const Scores& scores, float (&m)[kRows]) {
    static_assert(decltype(cute::size<0>(scores))::value == kRows);
    constexpr int kCols = decltype(cute::size<1>(scores))::value;
#pragma unroll
    for (int r = 0; r < kRows; ++r) m[r] = tree_reduce<kCols>([&](int c) { return scores(r, c); }, fmaxf_op{});
#pragma unroll
    for (int r = 0; r < kRows; ++r) m[r] = fmaxf(m[r], __shfl_xor_sync(0xffffffffu, m[r], 1));
#pragma unroll
    for (int r = 0; r < kRows; ++r) m[r] = fmaxf(m[r], __shfl_xor_sync(0xffffffffu, m[r], 2));
  }
};

}  // namespace kernels
}  // namespace flashplus
