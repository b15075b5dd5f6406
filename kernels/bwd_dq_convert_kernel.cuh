// bwd_dq_convert_kernel.cuh — the fused backward's post-pass: dq = softmax_scale * dq_accum,
// converted to dq's dtype (the dK/dV kernel leaves dS unscaled, as in bwd_mainloop_sm80.cuh).
//
// Organised like the pre-pass (bwd_preprocess_kernel.cuh): one CTA per (sequence, 8-row block),
// lane groups per (row, head) item, four features per lane and step (one 16-byte load: accumulator
// rows are kHeadDim floats, a multiple of 32). A sequence with a bad index gets NaN rows, as the
// two-kernel path's dQ kernel writes them (seqlen_info.cuh).
#pragma once

#include "bwd_params.h"
#include "bwd_preprocess_kernel.cuh"
#include "dq_accum.cuh"
#include "element_access.cuh"
#include "seqlen_info.cuh"

namespace flashplus {
namespace kernels {

__global__ void __launch_bounds__(kRowPassThreads) bwd_dq_convert_kernel(const __grid_constant__ BwdParams p, int dtype) {
  const FwdParams& f = p.fwd;
  const RowBlockItems items(f);
  if (items.rows <= 0) return;
  const SeqlenInfo& seq = items.seq;
  const float scale = seq.index_errors ? NAN : f.softmax_scale;
  const bool whole_chunks = p.dq.aligned16 && f.head_dim % 4 == 0;  // 8-byte stores
  for (int at = items.item; at < items.count(f); at += items.items_per_pass) {
    const int i = items.m0 + at / f.h_q, head = at % f.h_q;
    const float4* accum = reinterpret_cast<const float4*>(p.dq_accum + dq_accum_offset(p, seq, items.batch, i, head));
    const int64_t dq_row = seq.query_offset(p.dq, i, head);
    for (int feature = 4 * items.lane; feature < f.head_dim; feature += 4 * items.lanes) {
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
}

}  // namespace kernels
}  // namespace flashplus
