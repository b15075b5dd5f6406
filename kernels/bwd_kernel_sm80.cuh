// bwd_kernel_sm80.cuh — the sm80 backward: dK/dV kernel (one CTA per key tile of one K/V head)
// and dQ kernel (one CTA per query tile of one query head). Orchestration only.
//
// Both recompute S = Q K^T and dP = dO V^T for their tiles and turn them into P and dS
// (bwd_mainloop_sm80.cuh). The dK/dV CTA loops over every query head of its GQA group and every
// query tile that sees its keys, accumulating in registers: the group reduction happens there, in
// a fixed order. The dQ CTA loops over the key tiles its queries see and accumulates dQ in fp32
// registers. No atomics anywhere: results are bit-identical across runs, so deterministic=1 costs
// nothing (the price is recomputing S and dP twice, 7 tile GEMMs instead of 5).
//
// Loads are synchronous (cp.async, then wait): the first generation favours simplicity here.
#pragma once

#include <cute/tensor.hpp>

#include "block_info.cuh"
#include "bwd_mainloop_sm80.cuh"
#include "bwd_params.h"
#include "mask.cuh"
#include "seqlen_info.cuh"
#include "tile_io_sm80.cuh"

namespace flashplus {
namespace kernels {

// LSE (base 2) and D of the tile's rows into shared memory; rows outside the sequence get
// lse = +inf (P = 0) and D = 0.
template <int kBlockM>
__device__ __forceinline__ void load_row_stats(const BwdParams& p, const SeqlenInfo& seq, int m0, int head,
                                               float* row_lse2, float* row_d, int tid) {
  if (tid < kBlockM) {
    const int row = m0 + tid;
    const bool inside = row < seq.seqlen_q;
    row_lse2[tid] = inside ? p.fwd.lse.data[seq.stats_offset(p.fwd.lse, row, head)] * kLog2e : INFINITY;
    row_d[tid] = inside ? p.softmax_d.data[seq.stats_offset(p.softmax_d, row, head)] : 0.f;
  }
}

template <typename Traits, bool kSoftcap>
__device__ __forceinline__ void bwd_dkdv_tile_sm80(const BwdParams& p, char* smem) {
  using namespace cute;
  using Element = typename Traits::Element;
  using TiledMma = typename Traits::TiledMma;
  using AtomN = typename Traits::SmemCopyAtom;
  using AtomT = typename Traits::SmemCopyAtomTransposed;
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kNThreads = Traits::kNThreads;
  const FwdParams& f = p.fwd;

  int linear = static_cast<int>(blockIdx.x);
  const int n_block = linear % p.num_n_blocks;
  linear /= p.num_n_blocks;
  const int kv_head = linear % f.h_k;
  const int batch = linear / f.h_k;
  const SeqlenInfo seq(f, batch);
  const int n0 = n_block * kBlockN;
  if (n0 >= seq.seqlen_k) return;
  const int tid = threadIdx.x;

  Element* base = reinterpret_cast<Element*>(smem);
  Tensor sQ = make_tensor(make_smem_ptr(base), typename Traits::SmemLayoutRows{});
  Tensor sdO = make_tensor(make_smem_ptr(base + Traits::kRowsTileElems), typename Traits::SmemLayoutRows{});
  Tensor sK = make_tensor(make_smem_ptr(base + 2 * Traits::kRowsTileElems), typename Traits::SmemLayoutRows{});
  Tensor sV = make_tensor(make_smem_ptr(base + 3 * Traits::kRowsTileElems), typename Traits::SmemLayoutRows{});
  Element* scores = base + 4 * Traits::kRowsTileElems;
  Tensor sP = make_tensor(make_smem_ptr(scores), typename Traits::SmemLayoutScores{});
  Tensor sdS = make_tensor(make_smem_ptr(scores + Traits::kScoresTileElems), typename Traits::SmemLayoutScores{});
  float* row_lse2 = reinterpret_cast<float*>(scores + 2 * Traits::kScoresTileElems);
  float* row_d = row_lse2 + kBlockM;
  // Transposed views: P^T, dS^T (A of dV, dK) and dO^T, Q^T (B of dV, dK).
  Tensor sPt = make_tensor(sP.data(), typename Traits::SmemLayoutScoresT{});
  Tensor sPt_shape = make_tensor(sP.data(), typename Traits::SmemLayoutScoresTNoSwizzle{});
  Tensor sdSt = make_tensor(sdS.data(), typename Traits::SmemLayoutScoresT{});
  Tensor sdSt_shape = make_tensor(sdS.data(), typename Traits::SmemLayoutScoresTNoSwizzle{});
  Tensor sQt = make_tensor(sQ.data(), typename Traits::SmemLayoutRowsT{});
  Tensor sQt_shape = make_tensor(sQ.data(), typename Traits::SmemLayoutRowsTNoSwizzle{});
  Tensor sdOt = make_tensor(sdO.data(), typename Traits::SmemLayoutRowsT{});
  Tensor sdOt_shape = make_tensor(sdO.data(), typename Traits::SmemLayoutRowsTNoSwizzle{});

  load_rows<kBlockN, kHeadDim, kNThreads>(sK, static_cast<const Element*>(f.k.data),
                                          [&](int r) { return seq.key_offset(f.k, n0 + r, kv_head); },
                                          seq.seqlen_k - n0, f.head_dim, f.k.aligned16, tid);
  load_rows<kBlockN, kHeadDim, kNThreads>(sV, static_cast<const Element*>(f.v.data),
                                          [&](int r) { return seq.key_offset(f.v, n0 + r, kv_head); },
                                          seq.seqlen_k - n0, f.head_dim, f.v.aligned16, tid);
  cp_async_fence();

  TiledMma tiled_mma;
  auto thr_mma = tiled_mma.get_thread_slice(tid);
  Tensor acc_dk = partition_fragment_C(tiled_mma, Shape<Int<kBlockN>, Int<kHeadDim>>{});
  Tensor acc_dv = partition_fragment_C(tiled_mma, Shape<Int<kBlockN>, Int<kHeadDim>>{});
  clear(acc_dk);
  clear(acc_dv);
  Tensor coords = thr_mma.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
  Tensor coords_rc = rowcol_view(coords);

  // Query rows that see some key of [n0, n0 + kBlockN) under the window rule.
  const int diagonal = seq.seqlen_k - seq.seqlen_q;
  int first_row = 0, last_row = seq.seqlen_q - 1;
  if (f.window_right >= 0) first_row = max(first_row, n0 - diagonal - f.window_right);
  if (f.window_left >= 0) last_row = min(last_row, n0 + kBlockN - 1 + f.window_left - diagonal);
  const WindowMask mask(f, seq.seqlen_q, seq.seqlen_k);

  if (first_row <= last_row) {
    for (int head = kv_head * f.group_size; head < (kv_head + 1) * f.group_size; ++head) {
      const LogitRule rule(f, batch, head, seq.seqlen_q, seq.seqlen_k);
      const uint32_t batch_head = static_cast<uint32_t>(batch * f.h_q + head);
      for (int m_block = first_row / kBlockM; m_block <= last_row / kBlockM; ++m_block) {
        const int m0 = m_block * kBlockM;
        __syncthreads();  // the previous tile's Q, dO, P, dS are no longer read
        load_rows<kBlockM, kHeadDim, kNThreads>(sQ, static_cast<const Element*>(f.q.data),
                                                [&](int r) { return seq.query_offset(f.q, m0 + r, head); },
                                                seq.seqlen_q - m0, f.head_dim, f.q.aligned16, tid);
        load_rows<kBlockM, kHeadDim, kNThreads>(sdO, static_cast<const Element*>(p.dout.data),
                                                [&](int r) { return seq.query_offset(p.dout, m0 + r, head); },
                                                seq.seqlen_q - m0, f.head_dim, p.dout.aligned16, tid);
        cp_async_fence();
        load_row_stats<kBlockM>(p, seq, m0, head, row_lse2, row_d, tid);
        cp_async_wait<0>();
        __syncthreads();

        Tensor acc_s = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kBlockN>>{});
        Tensor acc_dp = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kBlockN>>{});
        clear(acc_s);
        clear(acc_dp);
        gemm_smem<TiledMma, AtomN, AtomN>(acc_s, sQ, sQ, sK, sK, tid);
        gemm_smem<TiledMma, AtomN, AtomN>(acc_dp, sdO, sdO, sV, sV, tid);
        const bool exact = rule.has_alibi || !mask.all_visible(m0, m0 + kBlockM, n0, n0 + kBlockN);
        Tensor s_rc = rowcol_view(acc_s);
        Tensor dp_rc = rowcol_view(acc_dp);
        score_gradients<Traits::kHasDropout, kSoftcap>(s_rc, dp_rc, coords_rc, row_lse2, row_d, rule, mask, f,
                                                       batch_head, m0, n0, exact);
        store_fragment<TiledMma, Element>(acc_s, sP, tid);
        store_fragment<TiledMma, Element>(acc_dp, sdS, tid);
        __syncthreads();

        gemm_smem<TiledMma, AtomT, AtomT>(acc_dv, sPt, sPt_shape, sdOt, sdOt_shape, tid);  // dV += (P Z)^T dO
        gemm_smem<TiledMma, AtomT, AtomT>(acc_dk, sdSt, sdSt_shape, sQt, sQt_shape, tid);  // dK += dS^T Q
      }
    }
  }

  cp_async_wait<0>();  // K / V loads of a CTA whose keys no query sees
  __syncthreads();     // every warp is done with sK / sV: they stage dK / dV now
  store_fragment<TiledMma, Element>(acc_dk, sK, tid);
  store_fragment<TiledMma, Element>(acc_dv, sV, tid);
  __syncthreads();
  store_rows<kBlockN, kHeadDim, kNThreads>(sK, static_cast<Element*>(p.dk.data),
                                           [&](int r) { return seq.key_offset(p.dk, n0 + r, kv_head); },
                                           seq.seqlen_k - n0, f.head_dim, p.dk.aligned16, tid);
  store_rows<kBlockN, kHeadDim, kNThreads>(sV, static_cast<Element*>(p.dv.data),
                                           [&](int r) { return seq.key_offset(p.dv, n0 + r, kv_head); },
                                           seq.seqlen_k - n0, f.head_dim, p.dv.aligned16, tid);
}

template <typename Traits, bool kSoftcap>
__device__ __forceinline__ void bwd_dq_tile_sm80(const BwdParams& p, char* smem) {
  using namespace cute;
  using Element = typename Traits::Element;
  using TiledMma = typename Traits::TiledMma;
  using AtomN = typename Traits::SmemCopyAtom;
  using AtomT = typename Traits::SmemCopyAtomTransposed;
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kNThreads = Traits::kNThreads;
  const FwdParams& f = p.fwd;

  int linear = static_cast<int>(blockIdx.x);
  const int m_block = linear % p.num_m_blocks;
  linear /= p.num_m_blocks;
  const int head = linear % f.h_q;
  const int batch = linear / f.h_q;
  const SeqlenInfo seq(f, batch);
  const int m0 = m_block * kBlockM;
  if (m0 >= seq.seqlen_q) return;
  const int kv_head = head / f.group_size;
  const int tid = threadIdx.x;

  Element* base = reinterpret_cast<Element*>(smem);
  Tensor sQ = make_tensor(make_smem_ptr(base), typename Traits::SmemLayoutRows{});
  Tensor sdO = make_tensor(make_smem_ptr(base + Traits::kRowsTileElems), typename Traits::SmemLayoutRows{});
  Tensor sK = make_tensor(make_smem_ptr(base + 2 * Traits::kRowsTileElems), typename Traits::SmemLayoutRows{});
  Tensor sV = make_tensor(make_smem_ptr(base + 3 * Traits::kRowsTileElems), typename Traits::SmemLayoutRows{});
  Element* scores = base + 4 * Traits::kRowsTileElems;
  Tensor sdS = make_tensor(make_smem_ptr(scores), typename Traits::SmemLayoutScores{});
  float* row_lse2 = reinterpret_cast<float*>(scores + Traits::kScoresTileElems);
  float* row_d = row_lse2 + kBlockM;
  Tensor sKt = make_tensor(sK.data(), typename Traits::SmemLayoutRowsT{});
  Tensor sKt_shape = make_tensor(sK.data(), typename Traits::SmemLayoutRowsTNoSwizzle{});

  load_rows<kBlockM, kHeadDim, kNThreads>(sQ, static_cast<const Element*>(f.q.data),
                                          [&](int r) { return seq.query_offset(f.q, m0 + r, head); },
                                          seq.seqlen_q - m0, f.head_dim, f.q.aligned16, tid);
  load_rows<kBlockM, kHeadDim, kNThreads>(sdO, static_cast<const Element*>(p.dout.data),
                                          [&](int r) { return seq.query_offset(p.dout, m0 + r, head); },
                                          seq.seqlen_q - m0, f.head_dim, p.dout.aligned16, tid);
  cp_async_fence();
  load_row_stats<kBlockM>(p, seq, m0, head, row_lse2, row_d, tid);

  TiledMma tiled_mma;
  auto thr_mma = tiled_mma.get_thread_slice(tid);
  Tensor acc_dq = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kHeadDim>>{});
  clear(acc_dq);
  Tensor coords = thr_mma.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
  Tensor coords_rc = rowcol_view(coords);
  const LogitRule rule(f, batch, head, seq.seqlen_q, seq.seqlen_k);
  const WindowMask mask(f, seq.seqlen_q, seq.seqlen_k);
  const uint32_t batch_head = static_cast<uint32_t>(batch * f.h_q + head);
  const KeyBlockRange range = key_block_range<kBlockM, kBlockN>(f, m_block, seq.seqlen_q, seq.seqlen_k, 0, 1);

  for (int n_block = range.begin; n_block < range.end; ++n_block) {
    const int n0 = n_block * kBlockN;
    __syncthreads();  // the previous tile's K, V, dS are no longer read
    load_rows<kBlockN, kHeadDim, kNThreads>(sK, static_cast<const Element*>(f.k.data),
                                            [&](int r) { return seq.key_offset(f.k, n0 + r, kv_head); },
                                            seq.seqlen_k - n0, f.head_dim, f.k.aligned16, tid);
    load_rows<kBlockN, kHeadDim, kNThreads>(sV, static_cast<const Element*>(f.v.data),
                                            [&](int r) { return seq.key_offset(f.v, n0 + r, kv_head); },
                                            seq.seqlen_k - n0, f.head_dim, f.v.aligned16, tid);
    cp_async_fence();
    cp_async_wait<0>();
    __syncthreads();

    auto visit = [&](auto exact) __attribute__((always_inline)) {
      Tensor acc_s = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kBlockN>>{});
      Tensor acc_dp = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kBlockN>>{});
      clear(acc_s);
      clear(acc_dp);
      gemm_smem<TiledMma, AtomN, AtomN>(acc_s, sQ, sQ, sK, sK, tid);
      gemm_smem<TiledMma, AtomN, AtomN>(acc_dp, sdO, sdO, sV, sV, tid);
      Tensor s_rc = rowcol_view(acc_s);
      Tensor dp_rc = rowcol_view(acc_dp);
      score_gradients<Traits::kHasDropout, kSoftcap>(s_rc, dp_rc, coords_rc, row_lse2, row_d, rule, mask, f,
                                                     batch_head, m0, n0, decltype(exact)::value);
      store_fragment<TiledMma, Element>(acc_dp, sdS, tid);
      __syncthreads();
      gemm_smem<TiledMma, AtomN, AtomT>(acc_dq, sdS, sdS, sKt, sKt_shape, tid);  // dQ += dS K
    };
    if (rule.has_alibi || !mask.all_visible(m0, m0 + kBlockM, n0, n0 + kBlockN)) {
      visit(true_type{});
    } else {
      visit(false_type{});
    }
  }

  cp_async_wait<0>();
  __syncthreads();  // every warp is done with sQ: it stages dQ now
  store_fragment<TiledMma, Element>(acc_dq, sQ, tid);
  __syncthreads();
  store_rows<kBlockM, kHeadDim, kNThreads>(sQ, static_cast<Element*>(p.dq.data),
                                           [&](int r) { return seq.query_offset(p.dq, m0 + r, head); },
                                           seq.seqlen_q - m0, f.head_dim, p.dq.aligned16, tid);
}

// Softcap is decided once per launch, outside the tile code (see score_gradients).
template <typename Traits>
__global__ void __launch_bounds__(Traits::kNThreads) bwd_dkdv_kernel_sm80(const __grid_constant__ BwdParams p) {
  extern __shared__ __align__(128) char smem[];
  if (p.fwd.softcap > 0.f) {
    bwd_dkdv_tile_sm80<Traits, true>(p, smem);
  } else {
    bwd_dkdv_tile_sm80<Traits, false>(p, smem);
  }
}

template <typename Traits>
__global__ void __launch_bounds__(Traits::kNThreads) bwd_dq_kernel_sm80(const __grid_constant__ BwdParams p) {
  extern __shared__ __align__(128) char smem[];
  if (p.fwd.softcap > 0.f) {
    bwd_dq_tile_sm80<Traits, true>(p, smem);
  } else {
    bwd_dq_tile_sm80<Traits, false>(p, smem);
  }
}

}  // namespace kernels
}  // namespace flashplus
