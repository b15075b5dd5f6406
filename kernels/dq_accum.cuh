// dq_accum.cuh — where the fused backward keeps its fp32 dQ sums.
//
// Layout: (rows, h_q, kHeadDim) fp32, one row per query row of every sequence plus the padding
// rows of bwd_params.h's dq_accum_rows: dense sequence b starts at row b * round_up(max_seqlen_q,
// 64), varlen sequence b at cu_seqlens_q[b] + 64 b, so sequences never overlap. The pre-pass
// zeroes a row when it writes that row's D, the dK/dV kernel adds into it, and the post-pass
// (bwd_dq_convert_kernel.cuh) scales and converts it.
#pragma once

#include <cstdint>

#include "bwd_params.h"
#include "seqlen_info.cuh"

namespace flashplus {
namespace kernels {

// Index of (query row i of the sequence, head, feature 0) in p.dq_accum.
__device__ __forceinline__ int64_t dq_accum_offset(const BwdParams& p, const SeqlenInfo& seq, int batch, int i,
                                                   int head) {
  const int64_t first = p.fwd.cu_seqlens_q ? seq.q_row0 + static_cast<int64_t>(batch) * kDqAccumPadRows
                                           : batch * dq_accum_dense_rows(p.fwd.max_seqlen_q);
  const int64_t row = first + i;
  return (row * p.fwd.h_q + head) * p.dq_accum_head_dim;
}

}  // namespace kernels
}  // namespace flashplus
