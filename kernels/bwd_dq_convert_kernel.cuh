// bwd_dq_convert_kernel.cuh — the fused backward's post-pass: dq = softmax_scale * dq_accum,
// converted to dq's dtype (the dK/dV kernel leaves dS unscaled, as in bwd_mainloop_sm80.cuh).
//
// One warp per (batch, row, head), four features per lane and step (one 16-byte load: accumulator
// rows are kHeadDim floats, a multiple of 32). A sequence with a bad index gets NaN rows, as the
// two-kernel path's dQ kernel writes them (seqlen_info.cuh).
#pragma once

#include "bwd_params.h"
#include "dq_accum.cuh"
#include "element_access.cuh"
#include "seqlen_info.cuh"

namespace flashplus {
namespace kernels {

constexpr int kDqConvertWarpsPerBlock = 4;

__global__ void __launch_bounds__(kDqConvertWarpsPerBlock * 32)
    bwd_dq_convert_kernel(const __grid_constant__ BwdParams p, int dtype) {
  const FwdParams& f = p.fwd;
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kDqConvertWarpsPerBlock + threadIdx.x / 32;
  if (row >= static_cast<int64_t>(f.batch) * f.max_seqlen_q * f.h_q) return;
  const int head = static_cast<int>(row % f.h_q);
  const int i = static_cast<int>((row / f.h_q) % f.max_seqlen_q);
  const int batch = static_cast<int>(row / f.h_q / f.max_seqlen_q);
  const SeqlenInfo seq(f, batch);
  if (i >= seq.seqlen_q) return;
  const float4* accum = reinterpret_cast<const float4*>(p.dq_accum + dq_accum_offset(p, seq, batch, i, head));
  const int64_t dq_row = seq.query_offset(p.dq, i, head);
  const float scale = seq.index_errors ? NAN : f.softmax_scale;
  const bool whole_chunks = p.dq.aligned16 && f.head_dim % 4 == 0;  // 8-byte stores
  for (int feature = 4 * lane; feature < f.head_dim; feature += 4 * 32) {
    const float4 sum = accum[feature / 4];
    const float values[4] = {sum.x * scale, sum.y * scale, sum.z * scale, sum.w * scale};
    if (whole_chunks) {
      store4_from_float(p.dq.data, dq_row + feature, dtype, values);
    } else {
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (feature + e < f.head_dim) store_from_float(p.dq.data, dq_row + feature + e, dtype, values[e]);
    }
  }
}

}  // namespace kernels
}  // namespace flashplus
