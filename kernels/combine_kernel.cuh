// combine_kernel.cuh — merges partial attention results over disjoint key sets by their LSE:
//   lse = log(sum_i exp(lse_i)),  out = sum_i exp(lse_i - lse) * out_i
// A partial with a non-finite LSE saw no key and contributes nothing; with none left, out = 0 and
// lse = +inf. Serves split-KV (fp32 partials from the forward's workspace) and the C ABI's combine
// (ring attention: partials of any float dtype).
//
// One warp per (batch, row, head): every lane reads all partial LSEs (broadcast loads), then lanes
// stride over the head dim. Aliasing rule of the C ABI (out may be partial 0, lse may be LSE
// partial 0): each out element is read and written by the same lane, and the LSE is written only
// after __syncwarp(), when every lane has read it.
#pragma once

#include <cmath>

#include "element_access.cuh"
#include "launch.h"

namespace flashplus {
namespace kernels {

constexpr int kCombineWarpsPerBlock = 4;

__global__ void __launch_bounds__(kCombineWarpsPerBlock * 32) combine_kernel(const __grid_constant__ CombineParams p) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kCombineWarpsPerBlock + threadIdx.x / 32;
  if (row >= static_cast<int64_t>(p.batch) * p.seqlen * p.heads) return;
  const int h = static_cast<int>(row % p.heads);
  const int s = static_cast<int>((row / p.heads) % p.seqlen);
  const int64_t b = row / p.heads / p.seqlen;
  int64_t out_row = s;
  if (p.out_cu_seqlens) {
    // A bad entry (the forward kernel has reported it) writes nothing rather than out of bounds.
    const int64_t first = p.out_cu_seqlens[b], last = p.out_cu_seqlens[b + 1];
    if (first < 0 || last < first || last > p.out_rows_total || s >= last - first) return;
    out_row += first;
  }

  // Every load below is unconditional for i < num_partials (a predicate, not a branch), so a
  // lane has all of its partials' loads in flight at once; guarding each load by a branch on its
  // weight had serialised them (28 partials x 4 features: ~40 us for a single decode row).
  float partial_lse[kMaxSplits];
#pragma unroll
  for (int i = 0; i < kMaxSplits; ++i) {
    const CombinePartial& part = p.partials[i];
    partial_lse[i] =
        i < p.num_partials ? part.lse[b * part.lse_batch_stride + h * part.lse_head_stride + s * part.lse_row_stride]
                           : -INFINITY;
  }
  float max_lse = -INFINITY;
  bool poisoned = false;  // a NaN partial (a bad index in its keys) makes the row NaN, never dropped
#pragma unroll
  for (int i = 0; i < kMaxSplits; ++i) {
    poisoned |= isnan(partial_lse[i]);
    if (!isfinite(partial_lse[i])) partial_lse[i] = -INFINITY;
    max_lse = fmaxf(max_lse, partial_lse[i]);
  }
  const bool saw_no_key = max_lse == -INFINITY;
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < kMaxSplits; ++i) sum += i < p.num_partials ? expf(partial_lse[i] - max_lse) : 0.f;
  const float lse = poisoned ? NAN : saw_no_key ? INFINITY : max_lse + logf(sum);
  float weight[kMaxSplits];
#pragma unroll
  for (int i = 0; i < kMaxSplits; ++i) weight[i] = saw_no_key ? 0.f : expf(partial_lse[i] - lse);

  // One element type for all partials (split-KV: fp32) takes the typed path; mixed types the
  // per-element switch.
  bool one_dtype = true;
#pragma unroll
  for (int i = 1; i < kMaxSplits; ++i) one_dtype &= i >= p.num_partials || p.partials[i].dtype == p.partials[0].dtype;
  const int64_t out_base = b * p.out_batch_stride + out_row * p.out_row_stride + h * p.out_head_stride;
  auto merge = [&](auto load) {
    for (int d = lane; d < p.head_dim; d += 32) {
      float value[kMaxSplits];
#pragma unroll
      for (int i = 0; i < kMaxSplits; ++i) {
        const CombinePartial& part = p.partials[i];
        const int64_t index = b * part.out_batch_stride + s * part.out_row_stride + h * part.out_head_stride + d;
        value[i] = i < p.num_partials ? load(part, index) : 0.f;
      }
      float acc = 0.f;
      // A partial that saw no key has weight 0 and may hold anything (even NaN): select, not multiply.
#pragma unroll
      for (int i = 0; i < kMaxSplits; ++i) acc += weight[i] != 0.f ? weight[i] * value[i] : 0.f;
      store_from_float(p.out, out_base + d, p.out_dtype, poisoned ? NAN : acc);
    }
  };
  const int dtype = one_dtype ? p.partials[0].dtype : -1;
  if (dtype == FLASHPLUS_DTYPE_FLOAT32) {
    merge([](const CombinePartial& part, int64_t i) { return static_cast<const float*>(part.out)[i]; });
  } else if (dtype == FLASHPLUS_DTYPE_BFLOAT16) {
    merge([](const CombinePartial& part, int64_t i) {
      return __bfloat162float(static_cast<const __nv_bfloat16*>(part.out)[i]);
    });
  } else if (dtype == FLASHPLUS_DTYPE_FLOAT16) {
    merge([](const CombinePartial& part, int64_t i) { return __half2float(static_cast<const __half*>(part.out)[i]); });
  } else {
    merge([](const CombinePartial& part, int64_t i) { return load_as_float(part.out, i, part.dtype); });
  }
  __syncwarp();
  if (lane == 0 && p.lse) p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + out_row * p.lse_row_stride] = lse;
}

}  // namespace kernels
}  // namespace flashplus
