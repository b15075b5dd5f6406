// bwd_mainloop_sm90.cuh — the sm90 backward's elementwise step on transposed tiles: from
// (S^T, dP^T) to (P^T, dS^T), rows = keys, columns = query rows (bwd_traits_sm90.cuh says why).
//
// The same rule as the sm80 step (bwd_mainloop_sm80.cuh), split in two so that each half runs
// while a tensor-core product is in flight: probabilities() needs only S^T (and runs while dP^T
// is computed), score_gradients() then needs dP^T (and runs while dV += P^T dO is computed):
//   P  = exp(logit(s) - lse)                  (0 where masked)
//   dS = P * (dp - D) [* (1 - tanh^2)]        (gradient w.r.t. the raw score, unscaled)
// The LSE and D belong to the query, i.e. to a column here; the mask's per-row test becomes the
// range of queries that see the row's key (WindowMask::visible_queries). No dropout: dropout
// calls run the sm80 backward.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cute/tensor.hpp>

#include "fragment_layout.cuh"
#include "mask.cuh"
#include "softmax_online.cuh"

namespace flashplus {
namespace kernels {

// In place: s_rc (raw k.q) becomes P^T. With kSoftcap, dtanh_rc receives 1 - tanh^2 for the
// chain rule (score_gradients). row_lse: the natural-log LSE per query column of the tile (+inf
// past the sequence: P = 0). m0 / n0: first query / key of the tile within the sequence.
// kExact / kAlibi / kSoftcap are compile-time for the reasons the sm80 step gives.
template <bool kSoftcap, bool kExact, bool kAlibi, typename AccS, typename AccT, typename Coords>
__device__ __forceinline__ void probabilities_transposed(AccS& s_rc, AccT& dtanh_rc, const Coords& coords_rc,
                                                         const float* row_lse, const LogitRule& rule,
                                                         const WindowMask& mask, int m0, int n0) {
  using namespace cute;
  constexpr int kRows = decltype(size<0>(s_rc))::value;
  constexpr int kCols = decltype(size<1>(s_rc))::value;
  int first_query[kRows], end_query[kRows];  // per key row, as tile columns
  if constexpr (kExact) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      mask.visible_queries(n0 + get<0>(coords_rc(r, 0)), first_query[r], end_query[r]);
      first_query[r] -= m0;  // both within [0, INT32_MAX], so the differences cannot overflow
      end_query[r] -= m0;
    }
  }
  const float logit_scale = kSoftcap ? rule.softcap_outer : rule.scale_log2;
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int col = get<1>(coords_rc(0, c));
    const float lse2 = row_lse[col] * kLog2e;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float x = s_rc(r, c);
      if constexpr (kSoftcap) {
        x = tanhf(x * rule.softcap_inner);
        dtanh_rc(r, c) = 1.f - x * x;
      }
      float prob;
      if constexpr (kExact) {
        float bias = 0.f;
        if constexpr (kAlibi) {
          const int key = n0 + get<0>(coords_rc(r, c));
          bias = rule.slope_log2 * static_cast<float>(abs(m0 + col + rule.diagonal - key));
        }
        prob = col >= first_query[r] && col < end_query[r] ? fast_exp2(fmaf(x, logit_scale, -bias) - lse2) : 0.f;
      } else {
        prob = fast_exp2(fmaf(x, logit_scale, -lse2));
      }
      s_rc(r, c) = prob;
    }
  }
}

// In place: dp_rc (dO.v) becomes dS^T (unscaled: the kernels apply softmax_scale once to the
// finished dK and dQ). p_rc: P^T from probabilities_transposed; row_d: D per query column.
template <bool kSoftcap, typename AccP, typename AccDP, typename AccT, typename Coords>
__device__ __forceinline__ void score_gradients_transposed(const AccP& p_rc, AccDP& dp_rc, const AccT& dtanh_rc,
                                                           const Coords& coords_rc, const float* row_d) {
  using namespace cute;
  constexpr int kRows = decltype(size<0>(p_rc))::value;
  constexpr int kCols = decltype(size<1>(p_rc))::value;
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const float d = row_d[get<1>(coords_rc(0, c))];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float ds = p_rc(r, c) * (dp_rc(r, c) - d);
      if constexpr (kSoftcap) ds *= dtanh_rc(r, c);
      dp_rc(r, c) = ds;
    }
  }
}

// Two fp32 values as one 32-bit register of two 16-bit elements (one cvt instruction).
template <typename Element>
__device__ __forceinline__ uint32_t pack_pair(float lo, float hi) {
  if constexpr (std::is_same_v<Element, cute::half_t>) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

// A wgmma accumulator of a 64 x N tile converted to Element in the layout of the next wgmma's
// register A operand (k = N): the same registers, re-viewed (fragment_layout.cuh).
template <typename Element, typename Acc, typename FragA>
__device__ __forceinline__ void convert_to_a_operand(const Acc& acc, FragA& frag_a) {
  using namespace cute;
  static_assert(std::is_same_v<decltype(wgmma_acc_as_a_operand_layout(acc.layout())), decltype(frag_a.layout())>,
                "the accumulator's registers, re-viewed as an A operand, are laid out as the A fragment");
  static_assert(decltype(size(acc))::value % 2 == 0);
  uint32_t* packed = reinterpret_cast<uint32_t*>(raw_pointer_cast(frag_a.data()));
#pragma unroll
  for (int e = 0; e < size(acc); e += 2) packed[e / 2] = pack_pair<Element>(acc(e), acc(e + 1));
}

// Stores an fp32 accumulator as Element into its partition of a shared tile (dst =
// thr_mma.partition_C(tile), the accumulator's shape). Each (col c, c + 1) pair is adjacent within
// a 16-byte chunk under the 128-byte swizzle, so it is one 32-bit store.
template <typename Element, typename Acc, typename Dst>
__device__ __forceinline__ void store_accumulator(const Acc& acc, Dst&& dst) {
  using namespace cute;
  static_assert(decltype(size<0, 0>(acc))::value == 2, "values come in (col c, c + 1) pairs");
#pragma unroll
  for (int e = 0; e < size(acc); e += 2)
    *reinterpret_cast<uint32_t*>(raw_pointer_cast(&dst(e))) = pack_pair<Element>(acc(e), acc(e + 1));
}

}  // namespace kernels
}  // namespace flashplus
