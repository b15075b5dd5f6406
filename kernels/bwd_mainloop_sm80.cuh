// bwd_mainloop_sm80.cuh — the pieces both backward kernels share: shared-memory GEMMs with either
// operand read straight or transposed, and the elementwise step from (S, dP) to (P, dS).
//
// For one 64 x 64 tile, with s = q.k (raw), dp = dO.v, lse and D = rowsum(dO * O) of each row:
//   P  = exp(logit(s) - lse)                  (0 where masked; logit as in mask.cuh)
//   Z  = keep / (1 - p_drop)                  (1 without dropout)
//   dS = P * (Z * dp - D)                     (gradient w.r.t. the logit)
//   dS_raw = dS * (1 - tanh^2) [* scale]      (chain rule through softcap; 1 without it)
// dV takes P * Z, dK and dQ take dS_raw. ALiBi adds a constant per entry: no gradient of its own.
// The factor scale is the same for every entry, so the kernels apply it once to the finished dK
// and dQ accumulators instead of once per score (one multiply per element and step saved).
#pragma once

#include <cute/tensor.hpp>

#include "dropout_sm80.cuh"
#include "fragment_layout.cuh"
#include "mask.cuh"
#include "softmax_online.cuh"

namespace flashplus {
namespace kernels {

// acc += A @ B^T with A (M, K) and B (N, K) in shared memory (acc = A @ B^T when kFresh: the first
// k-slice's MMAs then take the constant zero register as accumulator, which saves clearing acc).
// read_a / read_b are the views that ldmatrix reads (transposed views with the .trans atom);
// shape_a / shape_b are the same views without swizzle, used only to shape the register fragments.
template <typename TiledMma, typename AtomA, typename AtomB, bool kFresh = false, typename Acc, typename ReadA,
          typename ShapeA, typename ReadB, typename ShapeB>
__device__ __forceinline__ void gemm_smem(Acc& acc, const ReadA& read_a, const ShapeA& shape_a, const ReadB& read_b,
                                          const ShapeB& shape_b, int tid) {
  using namespace cute;
  TiledMma tiled_mma;
  auto thr_mma = tiled_mma.get_thread_slice(tid);
  Tensor frag_a = thr_mma.partition_fragment_A(shape_a);  // (MMA, MMA_M, MMA_K)
  Tensor frag_b = thr_mma.partition_fragment_B(shape_b);  // (MMA, MMA_N, MMA_K)
  auto copy_a = make_tiled_copy_A(AtomA{}, tiled_mma);
  auto thr_copy_a = copy_a.get_thread_slice(tid);
  Tensor src_a = thr_copy_a.partition_S(read_a);
  Tensor dst_a = thr_copy_a.retile_D(frag_a);
  auto copy_b = make_tiled_copy_B(AtomB{}, tiled_mma);
  auto thr_copy_b = copy_b.get_thread_slice(tid);
  Tensor src_b = thr_copy_b.partition_S(read_b);
  Tensor dst_b = thr_copy_b.retile_D(frag_b);

  copy(copy_a, src_a(_, _, _0{}), dst_a(_, _, _0{}));
  copy(copy_b, src_b(_, _, _0{}), dst_b(_, _, _0{}));
  constexpr int kSteps = decltype(size<2>(frag_a))::value;
  static_assert(kSteps == decltype(size<2>(frag_b))::value);
#pragma unroll
  for (int k = 0; k < kSteps; ++k) {
    if (k + 1 < kSteps) {
      copy(copy_a, src_a(_, _, k + 1), dst_a(_, _, k + 1));
      copy(copy_b, src_b(_, _, k + 1), dst_b(_, _, k + 1));
    }
    if (kFresh && k == 0) {
      Tensor zero = make_fragment_like(acc);
      clear(zero);
      gemm(tiled_mma, acc, frag_a(_, _, k), frag_b(_, _, k), zero);
    } else {
      gemm(tiled_mma, frag_a(_, _, k), frag_b(_, _, k), acc);
    }
  }
}

// The two GEMMs every backward tile starts with, into fresh accumulators: acc_s = Q K^T (raw
// scores) and acc_dp = dO V^T. All four operands are row-major (rows, d) tiles in shared memory.
template <typename TiledMma, typename Atom, typename AccS, typename AccDP, typename SmemRows>
__device__ __forceinline__ void scores_and_dp(AccS& acc_s, AccDP& acc_dp, const SmemRows& sQ, const SmemRows& sK,
                                              const SmemRows& sdO, const SmemRows& sV, int tid) {
  gemm_smem<TiledMma, Atom, Atom, true>(acc_s, sQ, sQ, sK, sK, tid);
  gemm_smem<TiledMma, Atom, Atom, true>(acc_dp, sdO, sdO, sV, sV, tid);
}

// In place: acc_s (raw q.k) becomes P * Z, acc_dp (dO.v) becomes dS_raw / scale. All views rowcol.
// row_lse: the natural-log LSE per tile row (+inf for rows outside the sequence: their P is 0);
// row_d: D per tile row. m0 / n0: first query / key of the tile within the sequence.
// kSoftcap and kExact are compile-time for the reason given at the forward's apply_logit_rule: as
// runtime flags they became predicated code that every tile executed (the tanh sequence; the mask
// and ALiBi terms). kExact tiles (sequence end, causal / window edge, any ALiBi) apply the
// per-element rules, interior tiles only scale. kAlibi (exact tiles only) adds the ALiBi term: as a
// runtime slope of 0 it cost every exact tile three operations per element.
template <bool kHasDropout, bool kSoftcap, bool kExact, bool kAlibi, typename AccS, typename AccDP, typename Coords>
__device__ __forceinline__ void score_gradients(AccS& s_rc, AccDP& dp_rc, const Coords& coords_rc,
                                                const float* row_lse, const float* row_d, const LogitRule& rule,
                                                const WindowMask& mask, const FwdParams& p, uint32_t batch_head,
                                                int m0, int n0) {
  using namespace cute;
  constexpr int kRows = decltype(size<0>(s_rc))::value;
  constexpr int kCols = decltype(size<1>(s_rc))::value;
  if constexpr (kSoftcap) {
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int c = 0; c < kCols; ++c) s_rc(r, c) = tanhf(s_rc(r, c) * rule.softcap_inner);  // t
  }
  uint64_t keep_bits = ~uint64_t{0};
  if constexpr (kHasDropout) keep_bits = dropout_keep_bits(coords_rc, p.dropout, batch_head, m0, n0);
  const float logit_scale = kSoftcap ? rule.softcap_outer : rule.scale_log2;
  const float rescale = kHasDropout ? p.dropout_rescale : 1.f;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int row = get<0>(coords_rc(r, 0));
    const float lse2 = row_lse[row] * kLog2e;
    const float d = row_d[row];
    const int i = m0 + row;
    int lo = 0, hi = 0;  // the row's visible keys, as tile columns (WindowMask::visible_keys)
    if constexpr (kExact) {
      mask.visible_keys(i, lo, hi);
      lo -= n0;
      hi -= n0;
    }
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      const int col = get<1>(coords_rc(r, c));
      const float t_or_s = s_rc(r, c);
      float prob;
      if constexpr (kExact) {
        float bias = 0.f;
        if constexpr (kAlibi) bias = rule.slope_log2 * static_cast<float>(abs(i + rule.diagonal - (n0 + col)));
        prob = col >= lo && col < hi ? fast_exp2(fmaf(t_or_s, logit_scale, -bias) - lse2) : 0.f;
      } else {
        prob = fast_exp2(fmaf(t_or_s, logit_scale, -lse2));
      }
      const bool keep = ((keep_bits >> (r * kCols + c)) & 1u) != 0;
      const float dp = keep ? dp_rc(r, c) * rescale : 0.f;
      if constexpr (kSoftcap) {
        dp_rc(r, c) = prob * (dp - d) * (1.f - t_or_s * t_or_s);
      } else {
        dp_rc(r, c) = prob * (dp - d);
      }
      s_rc(r, c) = keep ? prob * rescale : 0.f;
    }
  }
}

// Converts an fp32 fragment to Element and stores it into a shared tile of the same shape.
// Through a tiled copy that may assume 32-bit alignment: each thread's (col c, c + 1) pair is
// adjacent in shared memory under the 16-byte-chunk swizzle, so it becomes one 32-bit store. An
// element-wise copy into the swizzled view was two 16-bit stores per pair (64 STS per thread and
// tile for P and dS).
template <typename TiledMma, typename Element, typename Acc, typename Smem>
__device__ __forceinline__ void store_fragment(const Acc& acc, Smem& smem, int tid) {
  using namespace cute;
  TiledMma tiled_mma;
  Tensor converted = make_tensor_like<Element>(acc);
#pragma unroll
  for (int e = 0; e < size(acc); ++e) converted(e) = Element(acc(e));
  auto copy_c = make_tiled_copy_C(Copy_Atom<AutoVectorizingCopyWithAssumedAlignment<32>, Element>{}, tiled_mma);
  auto thr_copy = copy_c.get_thread_slice(tid);
  copy(copy_c, thr_copy.retile_S(converted), thr_copy.partition_D(smem));
}

}  // namespace kernels
}  // namespace flashplus
