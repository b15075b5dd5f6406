// bwd_preprocess_kernel.cuh — the backward's pre-pass: D = rowsum(dO * O) per (row, head), fp32.
//
// D is the softmax Jacobian's row term (dS = P * (dP - D)); it is also an output of the C ABI
// (softmax_d). In fused mode the same pass zeroes each row's dQ accumulator (dq_accum.cuh): one
// pass over the rows instead of a separate memset launch.
//
// The pass moves a few bytes per (row, head), so what it costs is per-row bookkeeping, not memory:
// one CTA per (sequence, 8-row block) resolves the sequence once (RowBlockItems), and lane groups
// of 16 (d <= 128) or 32 work on (row, head) items, 16 bytes per lane and load.
#pragma once

#include "bwd_params.h"
#include "dq_accum.cuh"
#include "element_access.cuh"
#include "launch.h"
#include "seqlen_info.cuh"

namespace flashplus {
namespace kernels {

constexpr int kRowPassThreads = 256;
constexpr int kRowPassRows = 8;  // query rows per CTA: enough CTAs to overlap the latency-bound passes

// The (row, head) items of one CTA: rows [m0, m0 + kRowPassRows) of sequence `batch` (resolved
// once, in seq), every query head; `lanes` threads per item, items_per_pass items at a time.
struct RowBlockItems {
  SeqlenInfo seq;
  int batch, m0, rows, lanes, items_per_pass, item, lane;
  __device__ __forceinline__ explicit RowBlockItems(const FwdParams& f)
      : RowBlockItems(f, (f.max_seqlen_q + kRowPassRows - 1) / kRowPassRows) {}
  __device__ __forceinline__ int count(const FwdParams& f) const { return rows * f.h_q; }

 private:
  __device__ __forceinline__ RowBlockItems(const FwdParams& f, int num_m_blocks)
      : seq(f, static_cast<int>(blockIdx.x) / num_m_blocks) {
    batch = static_cast<int>(blockIdx.x) / num_m_blocks;
    m0 = (static_cast<int>(blockIdx.x) % num_m_blocks) * kRowPassRows;
    rows = min(kRowPassRows, seq.seqlen_q - m0);
    lanes = f.head_dim <= 128 ? 16 : 32;
    items_per_pass = kRowPassThreads / lanes;
    item = threadIdx.x / lanes;
    lane = threadIdx.x % lanes;
  }
};

// Sum over the lanes of one item group (a power of two <= 32, aligned within the warp).
__device__ __forceinline__ float group_sum(float value, int lanes) {
  for (int offset = lanes / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset, lanes);
  return value;
}

__global__ void __launch_bounds__(kRowPassThreads) bwd_preprocess_kernel(const __grid_constant__ BwdParams p, int dtype) {
  const FwdParams& f = p.fwd;
  const RowBlockItems items(f);
  if (items.rows <= 0) return;
  const SeqlenInfo& seq = items.seq;
  const bool vector = p.dout.aligned16 && f.out.aligned16 && f.head_dim % 8 == 0;
  // Every lane of a group runs the same number of passes (the shuffles need the whole group).
  for (int base = 0; base < items.count(f); base += items.items_per_pass) {
    const int at = base + items.item;
    const bool active = at < items.count(f);
    const int i = items.m0 + (active ? at / f.h_q : 0), head = active ? at % f.h_q : 0;
    float sum = 0.f;
    if (active) {
      const int64_t dout_row = seq.query_offset(p.dout, i, head);
      const int64_t out_row = seq.query_offset(f.out, i, head);
      if (vector) {
        for (int feature = 8 * items.lane; feature < f.head_dim; feature += 8 * items.lanes) {
          float dout[8], out[8];
          load8_as_float(p.dout.data, dout_row + feature, dtype, dout);
          load8_as_float(f.out.data, out_row + feature, dtype, out);
#pragma unroll
          for (int e = 0; e < 8; ++e) sum += dout[e] * out[e];
        }
      } else {
        for (int feature = items.lane; feature < f.head_dim; feature += items.lanes)
          sum += load_as_float(p.dout.data, dout_row + feature, dtype) * load_as_float(f.out.data, out_row + feature, dtype);
      }
    }
    sum = group_sum(sum, items.lanes);
    if (!active) continue;
    if (items.lane == 0) p.softmax_d.data[seq.stats_offset(p.softmax_d, i, head)] = sum;
    if (p.dq_accum) {
      float4* accum = reinterpret_cast<float4*>(p.dq_accum + dq_accum_offset(p, seq, items.batch, i, head));
      for (int chunk = items.lane; chunk < p.dq_accum_head_dim / 4; chunk += items.lanes)
        accum[chunk] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
}

}  // namespace kernels
}  // namespace flashplus
