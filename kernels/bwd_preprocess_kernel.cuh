// bwd_preprocess_kernel.cuh — the backward's pre-pass: D = rowsum(dO * O) per (row, head), fp32.
//
// D is the softmax Jacobian's row term (dS = P * (dP - D)); it is also an output of the C ABI
// (softmax_d). One warp per (batch, row, head): lanes stride over features, a shuffle sums them.
// In fused mode the same warp zeroes the row's dQ accumulator (dq_accum.cuh): one pass over the
// rows instead of a separate memset launch.
#pragma once

#include "bwd_params.h"
#include "dq_accum.cuh"
#include "element_access.cuh"
#include "launch.h"
#include "seqlen_info.cuh"

namespace flashplus {
namespace kernels {

constexpr int kBwdPreprocessWarpsPerBlock = 4;

__global__ void __launch_bounds__(kBwdPreprocessWarpsPerBlock * 32)
    bwd_preprocess_kernel(const __grid_constant__ BwdParams p, int dtype) {
  const FwdParams& f = p.fwd;
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kBwdPreprocessWarpsPerBlock + threadIdx.x / 32;
  if (row >= static_cast<int64_t>(f.batch) * f.max_seqlen_q * f.h_q) return;
  const int head = static_cast<int>(row % f.h_q);
  const int i = static_cast<int>((row / f.h_q) % f.max_seqlen_q);
  const int batch = static_cast<int>(row / f.h_q / f.max_seqlen_q);
  const SeqlenInfo seq(f, batch);
  if (i >= seq.seqlen_q) return;
  const int64_t dout_row = seq.query_offset(p.dout, i, head);
  const int64_t out_row = seq.query_offset(f.out, i, head);
  float sum = 0.f;
  if (p.dout.aligned16 && f.out.aligned16 && f.head_dim % 8 == 0) {  // 16-byte loads (the usual case)
    for (int feature = 8 * lane; feature < f.head_dim; feature += 8 * 32) {
      float dout[8], out[8];
      load8_as_float(p.dout.data, dout_row + feature, dtype, dout);
      load8_as_float(f.out.data, out_row + feature, dtype, out);
#pragma unroll
      for (int e = 0; e < 8; ++e) sum += dout[e] * out[e];
    }
  } else {
    for (int feature = lane; feature < f.head_dim; feature += 32)
      sum += load_as_float(p.dout.data, dout_row + feature, dtype) * load_as_float(f.out.data, out_row + feature, dtype);
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) p.softmax_d.data[seq.stats_offset(p.softmax_d, i, head)] = sum;
  if (p.dq_accum) {
    float* accum = p.dq_accum + dq_accum_offset(p, seq, batch, i, head);
    for (int feature = lane; feature < p.dq_accum_head_dim; feature += 32) accum[feature] = 0.f;
  }
}

}  // namespace kernels
}  // namespace flashplus
