// dmask_kernel.cuh — the optional S_dmask debug output, recomputed after the forward.
//
// Entry (b, h, i, j) = P[i, j] = exp(logit - lse) for visible keys, negated where dropout dropped
// it, 0 where masked or outside the sequence's (s_q, s_k). Computing it from the final LSE in a
// separate, plain kernel keeps the fast kernel free of a second output path and of a template flag;
// speed does not matter for a debug tensor. The logit rule and mask are the forward's own
// (mask.cuh), the keep-mask is the shared Philox one, so the signs match the CPU backend exactly.
//
// One CTA per (b, h, i) row; the q row is staged in shared memory as fp32.
#pragma once

#include <cmath>

#include "element_access.cuh"
#include "launch.h"
#include "mask.cuh"
#include "seqlen_info.cuh"

namespace flashplus {
namespace kernels {

constexpr int kDmaskThreads = 128;
constexpr int kDmaskMaxHeadDim = 256;

__global__ void __launch_bounds__(kDmaskThreads) dmask_kernel(const __grid_constant__ FwdParams p,
                                                              const __grid_constant__ DmaskParams m, int dtype) {
  __shared__ float q_row[kDmaskMaxHeadDim];
  const int64_t linear = blockIdx.x;
  const int i = static_cast<int>(linear % m.rows);
  const int h = static_cast<int>((linear / m.rows) % p.h_q);
  const int b = static_cast<int>(linear / m.rows / p.h_q);
  const int64_t row_base = b * m.strides[0] + h * m.strides[1] + i * m.strides[2];
  const SeqlenInfo seq(p, b);
  const bool row_in_sequence = i < seq.seqlen_q;

  float lse = INFINITY;
  if (row_in_sequence) {
    for (int f = threadIdx.x; f < p.head_dim; f += kDmaskThreads)
      q_row[f] = load_as_float(p.q.data, seq.query_offset(p.q, i, h) + f, dtype);
    lse = p.lse.data[seq.stats_offset(p.lse, i, h)];
  }
  __syncthreads();

  const LogitRule rule(p, b, h, seq.seqlen_q, seq.seqlen_k);
  const WindowMask mask(p, seq.seqlen_q, seq.seqlen_k);
  const int kv_head = h / p.group_size;
  const uint32_t batch_head = static_cast<uint32_t>(b * p.h_q + h);
  for (int j = threadIdx.x; j < m.cols; j += kDmaskThreads) {
    float value = 0.f;
    if (row_in_sequence && j < seq.seqlen_k && mask.visible(i, j) && lse != INFINITY) {
      const int64_t k_row = seq.key_offset(p.k, j, kv_head);
      float dot = 0.f;
      for (int f = 0; f < p.head_dim; ++f) dot += q_row[f] * load_as_float(p.k.data, k_row + f, dtype);
      value = exp2f(rule.to_log2_logit(dot, i, j) - lse * kLog2e);
      if (m.has_dropout && !p.dropout.keep(batch_head, static_cast<uint32_t>(i), static_cast<uint32_t>(j))) value = -value;
    }
    store_from_float(m.data, row_base + static_cast<int64_t>(j) * m.strides[3], m.dtype, value);
  }
}

}  // namespace kernels
}  // namespace flashplus
