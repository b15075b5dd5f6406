// fwd_kernel_sm80.cuh — the sm80 forward kernel: one CTA = one query tile of one head (and one
// split of its keys). Orchestration only; the pieces live in:
//   tile_scheduler.cuh   which tile this CTA owns
//   seqlen_info.cuh      where the sequence's rows are (dense / varlen / paged / leftpad)
//   block_info.cuh       which key tiles to visit (causal, window, split)
//   mask.cuh             logit rule (scale, softcap, ALiBi) and window mask
//   softmax_online.cuh   running max / sum, LSE
//   fwd_mainloop_sm80.cuh loads and MMAs;  fwd_epilogue_sm80.cuh  O and LSE stores
//
// Pipeline (one K and one V buffer): key tiles are visited from last to first, so the tiles that
// need masking (the sequence end, the causal diagonal) come first. While S = Q K^T runs, V of the
// same tile streams in; while softmax and P V run, K of the next tile streams in.
#pragma once

#include <cute/tensor.hpp>

#include "block_info.cuh"
#include "dropout_sm80.cuh"
#include "fragment_layout_sm80.cuh"
#include "fwd_epilogue_sm80.cuh"
#include "fwd_mainloop_sm80.cuh"
#include "fwd_params.h"
#include "mask.cuh"
#include "seqlen_info.cuh"
#include "softmax_online.cuh"
#include "tile_scheduler.cuh"

namespace flashplus {
namespace kernels {

// Rewrites raw dot products as base-2 logits and masks them, in place. scores: (MMA, MMA_M, MMA_N).
// One uniform branch per feature and tile, each around a loop over the whole fragment: a branch
// per element would split the unrolled code into hundreds of basic blocks.
template <typename Scores, typename Coords>
__device__ __forceinline__ void apply_logit_rule(Scores& scores, const Coords& coords, const LogitRule& rule,
                                                 const WindowMask& mask, int m0, int n0, bool needs_mask) {
  using namespace cute;
  if (rule.has_softcap) {
#pragma unroll
    for (int e = 0; e < size(scores); ++e) scores(e) = rule.softcap_outer * tanhf(scores(e) * rule.softcap_inner);
  } else {
#pragma unroll
    for (int e = 0; e < size(scores); ++e) scores(e) *= rule.scale_log2;
  }
  if (rule.has_alibi) {
#pragma unroll
    for (int e = 0; e < size(scores); ++e) {
      const int i = m0 + get<0>(coords(e));
      const int j = n0 + get<1>(coords(e));
      scores(e) -= rule.slope_log2 * static_cast<float>(abs(i + rule.diagonal - j));
    }
  }
  if (needs_mask) {
#pragma unroll
    for (int e = 0; e < size(scores); ++e) {
      if (!mask.visible(m0 + get<0>(coords(e)), n0 + get<1>(coords(e)))) scores(e) = -INFINITY;
    }
  }
}

// Zeroes the probabilities that dropout drops. probs_rc / coords_rc: rowcol views.
template <typename Probs, typename Coords>
__device__ __forceinline__ void apply_dropout(Probs& probs_rc, const Coords& coords_rc, const DropoutStream& dropout,
                                              uint32_t batch_head, int m0, int n0) {
  using namespace cute;
  constexpr int kRows = decltype(size<0>(probs_rc))::value;
  constexpr int kCols = decltype(size<1>(probs_rc))::value;
  const uint64_t keep_bits = dropout_keep_bits(coords_rc, dropout, batch_head, m0, n0);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      if (((keep_bits >> (r * kCols + c)) & 1u) == 0) probs_rc(r, c) = 0.f;
    }
  }
}

template <typename Traits>
__global__ void __launch_bounds__(Traits::kNThreads) fwd_kernel_sm80(const __grid_constant__ FwdParams p) {
  using namespace cute;
  using Element = typename Traits::Element;
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kNThreads = Traits::kNThreads;
  using Mainloop = FwdMainloopSm80<Traits>;

  extern __shared__ __align__(128) char smem[];
  const int tid = threadIdx.x;
  const FwdTile tile = StaticTileScheduler::tile(p, static_cast<int>(blockIdx.x));
  const SeqlenInfo seq(p, tile.batch);
  const int m0 = tile.m_block * kBlockM;
  if (m0 >= seq.seqlen_q) return;  // varlen: this sequence is shorter than the longest
  const int kv_head = tile.head / p.group_size;

  Element* smem_q = reinterpret_cast<Element*>(smem);
  Element* smem_k = smem_q + Traits::kSmemQElems;
  Element* smem_v = smem_k + Traits::kSmemKVElems;
  Tensor sQ = make_tensor(make_smem_ptr(smem_q), typename Traits::SmemLayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(smem_k), typename Traits::SmemLayoutKV{});
  Tensor sV = make_tensor(make_smem_ptr(smem_v), typename Traits::SmemLayoutKV{});
  Tensor sVt = make_tensor(make_smem_ptr(smem_v), typename Traits::SmemLayoutVt{});
  Tensor sVt_no_swizzle = make_tensor(make_smem_ptr(smem_v), typename Traits::SmemLayoutVtNoSwizzle{});

  typename Traits::TiledMma tiled_mma;
  auto thr_mma = tiled_mma.get_thread_slice(tid);
  Tensor acc_o = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kHeadDim>>{});
  clear(acc_o);
  Tensor acc_o_rc = rowcol_view(acc_o);
  constexpr int kRows = decltype(size<0>(acc_o_rc))::value;
  OnlineSoftmax<kRows> softmax;

  const KeyBlockRange range = key_block_range<kBlockM, kBlockN>(p, tile.m_block, seq.seqlen_q, seq.seqlen_k,
                                                                tile.split, p.num_splits);
  if (!range.empty()) {
    const Element* q = static_cast<const Element*>(p.q.data);
    const Element* k = static_cast<const Element*>(p.k.data);
    const Element* v = static_cast<const Element*>(p.v.data);
    auto q_row = [&](int r) { return seq.query_offset(p.q, m0 + r, tile.head); };
    auto load_k = [&](int n_block) {
      const int n0 = n_block * kBlockN;
      load_rows<kBlockN, kHeadDim, kNThreads>(sK, k, [&](int r) { return seq.key_offset(p.k, n0 + r, kv_head); },
                                              seq.seqlen_k - n0, p.head_dim, p.k.aligned16, tid);
    };
    auto load_v = [&](int n_block) {
      const int n0 = n_block * kBlockN;
      load_rows<kBlockN, kHeadDim, kNThreads>(sV, v, [&](int r) { return seq.key_offset(p.v, n0 + r, kv_head); },
                                              seq.seqlen_k - n0, p.head_dim, p.v.aligned16, tid);
    };

    load_rows<kBlockM, kHeadDim, kNThreads>(sQ, q, q_row, seq.seqlen_q - m0, p.head_dim, p.q.aligned16, tid);
    load_k(range.end - 1);
    cp_async_fence();

    const LogitRule rule(p, tile.batch, tile.head, seq.seqlen_q, seq.seqlen_k);
    const WindowMask mask(p, seq.seqlen_q, seq.seqlen_k);
    const uint32_t batch_head = static_cast<uint32_t>(tile.batch * p.h_q + tile.head);
    Tensor coords_s = thr_mma.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
    Tensor coords_s_rc = rowcol_view(coords_s);

    for (int n_block = range.end - 1; n_block >= range.begin; --n_block) {
      const int n0 = n_block * kBlockN;
      cp_async_wait<0>();
      __syncthreads();  // K (and Q) landed; every warp finished the previous P V, so V is free
      load_v(n_block);
      cp_async_fence();

      Tensor acc_s = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kBlockN>>{});
      Mainloop::gemm_qk(acc_s, sQ, sK, tid);

      cp_async_wait<0>();
      __syncthreads();  // V landed; every warp finished reading K
      if (n_block > range.begin) {
        load_k(n_block - 1);
        cp_async_fence();
      }

      const bool needs_mask = !mask.all_visible(m0, m0 + kBlockM, n0, n0 + kBlockN);
      apply_logit_rule(acc_s, coords_s, rule, mask, m0, n0, needs_mask);
      Tensor acc_s_rc = rowcol_view(acc_s);
      softmax.step(acc_s_rc, acc_o_rc);
      if constexpr (Traits::kHasDropout) apply_dropout(acc_s_rc, coords_s_rc, p.dropout, batch_head, m0, n0);

      Tensor rP = make_tensor_like<Element>(acc_s);
#pragma unroll
      for (int e = 0; e < size(acc_s); ++e) rP(e) = Element(acc_s(e));
      Mainloop::gemm_pv(acc_o, rP, sVt, sVt_no_swizzle, tid);
    }
  }

  float lse[kRows];
  softmax.finalize(acc_o_rc, Traits::kHasDropout ? p.dropout_rescale : 1.f, lse);
  FwdEpilogueSm80<Traits>::store(p, seq, tile.batch, tile.m_block, tile.head, tile.split, acc_o, lse, sQ, tid);
}

}  // namespace kernels
}  // namespace flashplus
