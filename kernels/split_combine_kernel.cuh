// split_combine_kernel.cuh — merges the forward's split-KV partials (fwd_params.h's dense fp32
// workspace) into out / lse:  lse = log(sum_i exp(lse_i)),  out = sum_i exp(lse_i - lse) out_i.
//
// Why not combine_kernel.cuh: that one serves the C ABI's combine (ring attention), whose partials
// are separate tensors of any dtype and stride, at most kMaxSplits of them, each described in the
// kernel parameters; its lanes walk the head dim one element at a time. The split-KV partials are
// one regular fp32 array, so here a lane reads four features with one 16-byte load per partial,
// the split index is a stride (up to kMaxSplitsKv partials), and the LSEs are spread over the
// lanes and merged with warp shuffles. For a decode step this kernel is on the critical path of
// every generated token.
//
// One warp per (batch, query row, head), or, with many splits (decode at small batch, where the
// rows are few), a whole 4-warp block per row: each warp then sums every fourth split and the
// four sums meet in shared memory, so a lane waits for num_splits / 32 rounds of loads instead
// of num_splits / 8. Semantics match combine_kernel.cuh: a partial with a
// non-finite LSE saw no key and contributes nothing (its out may hold anything); none left gives
// out = 0, lse = +inf; a NaN LSE (a bad index in that split's keys) makes the row NaN.
#pragma once

#include <cmath>

#include "dependent_launch.cuh"
#include "element_access.cuh"
#include "launch.h"

namespace flashplus {
namespace kernels {

constexpr int kSplitCombineWarpsPerBlock = 4;
constexpr int kSplitsPerLane = kMaxSplitsKv / 32;
constexpr int kSplitCombineMaxHeadDim = 256;  // largest padded head dim: 2 float4 per lane

// Splits from which a row gets a whole block (launch_split_combine).
constexpr int kSplitCombineBlockPerRowSplits = 16;

__global__ void __launch_bounds__(kSplitCombineWarpsPerBlock * 32)
    split_combine_kernel(const __grid_constant__ SplitCombineParams p) {
  // Launched early (launch_combine.cu): nothing below may read before the split kernel has
  // finished and its partials are visible.
  wait_for_prerequisite_grid();
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const bool block_per_row = p.num_splits >= kSplitCombineBlockPerRowSplits;
  const int64_t row = block_per_row ? static_cast<int64_t>(blockIdx.x)
                                    : static_cast<int64_t>(blockIdx.x) * kSplitCombineWarpsPerBlock + warp;
  const int first_split = block_per_row ? warp : 0;
  const int split_step = block_per_row ? kSplitCombineWarpsPerBlock : 1;
  // Every exit below is uniform over the row's warps, so with block_per_row the whole block leaves
  // together and the __syncthreads() further down is reached by all or none.
  if (row >= static_cast<int64_t>(p.batch) * p.max_seqlen_q * p.heads) return;
  const int h = static_cast<int>(row % p.heads);
  const int s = static_cast<int>((row / p.heads) % p.max_seqlen_q);
  const int64_t b = row / p.heads / p.max_seqlen_q;
  int64_t out_row = s;
  if (p.out_cu_seqlens) {
    // A bad entry (the forward kernel has reported it) writes nothing rather than out of bounds.
    const int64_t first = p.out_cu_seqlens[b], last = p.out_cu_seqlens[b + 1];
    if (first < 0 || last < first || last > p.out_rows_total || s >= last - first) return;
    out_row += first;
  }

  // Lane l holds the LSEs of splits l, l + 32, ...
  const int64_t lse_split_stride = static_cast<int64_t>(p.batch) * p.heads * p.max_seqlen_q;
  const float* lse_base = p.lse_partial + (b * p.heads + h) * p.max_seqlen_q + s;
  float split_lse[kSplitsPerLane];
  bool poisoned = false;
  float max_lse = -INFINITY;
#pragma unroll
  for (int j = 0; j < kSplitsPerLane; ++j) {
    const int split = lane + 32 * j;
    split_lse[j] = split < p.num_splits ? lse_base[split * lse_split_stride] : -INFINITY;
    poisoned |= isnan(split_lse[j]);
    if (!isfinite(split_lse[j])) split_lse[j] = -INFINITY;
    max_lse = fmaxf(max_lse, split_lse[j]);
  }
  poisoned = __any_sync(0xffffffffu, poisoned);
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) max_lse = fmaxf(max_lse, __shfl_xor_sync(0xffffffffu, max_lse, offset));
  const bool saw_no_key = max_lse == -INFINITY;
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < kSplitsPerLane; ++j) sum += saw_no_key ? 0.f : expf(split_lse[j] - max_lse);
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  const float lse = poisoned ? NAN : saw_no_key ? INFINITY : max_lse + logf(sum);
  float weight[kSplitsPerLane];
#pragma unroll
  for (int j = 0; j < kSplitsPerLane; ++j) weight[j] = saw_no_key ? 0.f : expf(split_lse[j] - lse);

  // Features 4 lane .. 4 lane + 3 (then + 128, ...): rows are padded to padded_head_dim, a
  // multiple of 32 floats, so the 16-byte loads stay inside the row and aligned.
  const int64_t out_split_stride = static_cast<int64_t>(p.batch) * p.max_seqlen_q * p.heads * p.padded_head_dim;
  const float* out_base = p.out_partial + ((b * p.max_seqlen_q + s) * p.heads + h) * p.padded_head_dim;
  const int64_t dst = b * p.out_batch_stride + out_row * p.out_row_stride + h * p.out_head_stride;
  __shared__ float4 partial_sums[kSplitCombineWarpsPerBlock][kSplitCombineMaxHeadDim / 128][32];
#pragma unroll
  for (int chunk = 0; chunk < kSplitCombineMaxHeadDim / 128; ++chunk) {
    if (128 * chunk >= p.padded_head_dim) break;  // uniform over the block
    const int d0 = 4 * lane + 128 * chunk;
    const bool lane_inside = d0 < p.padded_head_dim;  // e.g. lanes 24..31 at a padded head dim of 96
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 8
    for (int split = first_split; split < p.num_splits; split += split_step) {
      // Split i's weight lives in lane i % 32, register i / 32.
      float w = weight[0];
#pragma unroll
      for (int j = 1; j < kSplitsPerLane; ++j) w = split / 32 == j ? weight[j] : w;
      w = __shfl_sync(0xffffffffu, w, split % 32);
      // Unconditional load, then select: a partial that saw no key has weight 0 and may hold NaN,
      // and branching on the weight would serialise the loads.
      const float4 v = lane_inside ? *reinterpret_cast<const float4*>(out_base + split * out_split_stride + d0)
                                   : make_float4(0.f, 0.f, 0.f, 0.f);
      const bool used = w != 0.f;
      acc.x += used ? w * v.x : 0.f;
      acc.y += used ? w * v.y : 0.f;
      acc.z += used ? w * v.z : 0.f;
      acc.w += used ? w * v.w : 0.f;
    }
    if (block_per_row) {
      partial_sums[warp][chunk][lane] = acc;
      __syncthreads();
      if (warp != 0) continue;
#pragma unroll
      for (int w = 1; w < kSplitCombineWarpsPerBlock; ++w) {
        const float4 other = partial_sums[w][chunk][lane];
        acc.x += other.x;
        acc.y += other.y;
        acc.z += other.z;
        acc.w += other.w;
      }
    }
    const float values[4] = {acc.x, acc.y, acc.z, acc.w};
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (d0 + e < p.head_dim) store_from_float(p.out, dst + d0 + e, p.out_dtype, poisoned ? NAN : values[e]);
  }
  if (warp != 0 && block_per_row) return;
  if (lane == 0 && p.lse) p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + out_row * p.lse_row_stride] = lse;
}

}  // namespace kernels
}  // namespace flashplus
