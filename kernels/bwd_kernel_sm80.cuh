// bwd_kernel_sm80.cuh — the sm80 backward: dK/dV kernel (one CTA per key tile of one K/V head)
// and dQ kernel (one CTA per query tile of one query head). Orchestration only.
//
// Both recompute S = Q K^T and dP = dO V^T for their tiles and turn them into P and dS
// (bwd_mainloop_sm80.cuh). The dK/dV CTA loops over every query head of its GQA group and every
// query tile that sees its keys, accumulating in registers: the group reduction happens there, in
// a fixed order. Two modes for dQ:
// - fused (kFusedDq, the default, deterministic = 0): the dK/dV CTA also computes each tile's
//   dS K and adds it into an fp32 buffer with atomics (dq_accum.cuh); a post-pass converts it.
//   5 tile GEMMs per tile, but the order of the fp32 additions varies from run to run.
// - two kernels (deterministic = 1): a separate dQ CTA per query tile loops over the key tiles its
//   queries see and accumulates dQ in registers. No atomics anywhere: bit-identical across runs,
//   at the price of recomputing S and dP (7 tile GEMMs instead of 5).
//
// Loads are double-buffered up to d = 128: while a tile computes, the next Q / dO tile (dK/dV
// kernel) or K / V tile (dQ kernel) and its row statistics stream into the other buffer. Above
// d = 128 a second buffer would not fit next to the first in the opt-in shared memory of most
// parts, so those variants load, wait and compute in turn (Traits::kStages == 1). On an H100,
// where two buffers do fit at d = 256 (209 KiB), a two-buffer variant measured 3-6% slower than
// the one-buffer one (bwd 176 / 191 against 182 / 202 TFLOP/s at s = 2k / 8k, 2026-12-07): the
// loads are not what this kernel waits on (kernels/NOTES.md, run 12).
#pragma once

#include <cute/tensor.hpp>

#include "block_info.cuh"
#include "bwd_mainloop_sm80.cuh"
#include "bwd_params.h"
#include "bwd_tile_common.cuh"
#include "dq_accum.cuh"
#include "key_tile_loader_sm80.cuh"
#include "mask.cuh"
#include "seqlen_info.cuh"
#include "tile_io_sm80.cuh"

namespace flashplus {
namespace kernels {

// Row tiles of one kind (64 x d, swizzled) laid out one after another from `first`: tile i.
template <typename Traits>
__device__ __forceinline__ auto row_tile(typename Traits::Element* first, int i) {
  return cute::make_tensor(cute::make_smem_ptr(first + i * Traits::kRowsTileElems), typename Traits::SmemLayoutRows{});
}

// Where the dK/dV kernel's tiles live in shared memory: kStages x (Q, dO), kKeyGroups x (K, V),
// kKeyGroups x (P, dS), then kStages x (LSE, D) rows. One description for the kernel body and
// fused_dq_step, which reads every group's K and dS.
template <typename Traits>
struct DkDvSmem {
  using Element = typename Traits::Element;
  static constexpr int kStages = Traits::kStages;
  static constexpr int kGroups = Traits::kKeyGroups;
  Element* base;

  __device__ __forceinline__ auto q(int stage) const { return row_tile<Traits>(base, 2 * stage); }
  __device__ __forceinline__ auto dout(int stage) const { return row_tile<Traits>(base, 2 * stage + 1); }
  __device__ __forceinline__ auto key(int g) const { return row_tile<Traits>(base, 2 * kStages + 2 * g); }
  __device__ __forceinline__ auto value(int g) const { return row_tile<Traits>(base, 2 * kStages + 2 * g + 1); }
  __device__ __forceinline__ auto probs(int g) const { return scores_tile(2 * g); }
  __device__ __forceinline__ auto ds(int g) const { return scores_tile(2 * g + 1); }
  __device__ __forceinline__ float* lse(int stage) const { return stats() + 2 * stage * Traits::kBlockM; }
  __device__ __forceinline__ float* row_d(int stage) const { return stats() + (2 * stage + 1) * Traits::kBlockM; }

 private:
  __device__ __forceinline__ Element* scores() const {
    return base + (2 * kStages + 2 * kGroups) * Traits::kRowsTileElems;
  }
  __device__ __forceinline__ auto scores_tile(int i) const {
    return cute::make_tensor(cute::make_smem_ptr(scores() + i * Traits::kScoresTileElems),
                             typename Traits::SmemLayoutScores{});
  }
  __device__ __forceinline__ float* stats() const {
    return reinterpret_cast<float*>(scores() + 2 * kGroups * Traits::kScoresTileElems);
  }
};

// The fused mode's dQ step of one (query tile, CTA) pair: dQ(rows m0..) += sum over key groups g of
// dS_g K_g, by every thread of the CTA, added into dq_accum. Called after the barrier that makes
// all groups' dS visible; the next step's barrier protects dS before it is overwritten.
template <typename Traits>
__device__ __forceinline__ void fused_dq_step(const BwdParams& p, const SeqlenInfo& seq, int batch, int head, int m0,
                                              const DkDvSmem<Traits>& smem, int tid) {
  using namespace cute;
  using TiledMmaDq = typename Traits::TiledMmaDq;
  constexpr int kChunk = Traits::kDqChunk;
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kHeadDim = Traits::kHeadDim;
  TiledMmaDq tiled_mma;
  auto thr_mma = tiled_mma.get_thread_slice(tid);
  Tensor coords = thr_mma.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kChunk>>{}));
  float* dq_rows = p.dq_accum + dq_accum_offset(p, seq, batch, m0, head);
#pragma unroll
  for (int chunk = 0; chunk < kHeadDim / kChunk; ++chunk) {
    Tensor acc_dq = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kChunk>>{});
#pragma unroll
    for (int g = 0; g < Traits::kKeyGroups; ++g) {
      Tensor sdS = smem.ds(g);
      Tensor sK = smem.key(g);
      Tensor sKt = make_tensor(sK.data(), typename Traits::SmemLayoutRowsT{});
      Tensor sKt_shape = make_tensor(sK.data(), typename Traits::SmemLayoutRowsTNoSwizzle{});
      auto gemm_dq = [&](auto fresh) __attribute__((always_inline)) {
        gemm_smem<TiledMmaDq, typename Traits::SmemCopyAtom, typename Traits::SmemCopyAtomTransposed,
                  decltype(fresh)::value>(
            acc_dq, sdS, sdS, local_tile(sKt, Shape<Int<kChunk>, Int<kBlockN>>{}, make_coord(chunk, 0)),
            local_tile(sKt_shape, Shape<Int<kChunk>, Int<kBlockN>>{}, make_coord(chunk, 0)), tid);
      };
      if (g == 0) {
        gemm_dq(true_type{});  // the first group's product initialises acc_dq
      } else {
        gemm_dq(false_type{});
      }
    }
    atomic_add_fragment(dq_rows + chunk * kChunk, static_cast<int64_t>(p.fwd.h_q) * kHeadDim, acc_dq,
                                    coords);
  }
}

template <typename Traits, bool kSoftcap, bool kFusedDq>
__device__ __forceinline__ void bwd_dkdv_tile_sm80(const BwdParams& p, char* smem_bytes) {
  using namespace cute;
  using Element = typename Traits::Element;
  using TiledMma = typename Traits::TiledMma;
  using TiledMmaKV = typename Traits::TiledMmaKV;
  using AtomN = typename Traits::SmemCopyAtom;
  using AtomT = typename Traits::SmemCopyAtomTransposed;
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kGroupThreads = Traits::kNThreads;  // one key group
  constexpr int kNThreads = Traits::kNThreadsDkDv;  // the CTA
  constexpr int kGroups = Traits::kKeyGroups;
  constexpr int kStages = Traits::kStages;
  const FwdParams& f = p.fwd;

  // One CTA per kGroups consecutive key tiles of one K/V head.
  const int num_cta_n = (p.num_n_blocks + kGroups - 1) / kGroups;
  int linear = static_cast<int>(blockIdx.x);
  const int cta_n = linear % num_cta_n;
  linear /= num_cta_n;
  const int kv_head = linear % f.h_k;
  const int batch = linear / f.h_k;
  const SeqlenInfo seq(f, batch);
  const int cta_n0 = cta_n * kGroups * kBlockN;
  if (cta_n0 >= seq.seqlen_k) return;
  const int tid = threadIdx.x;
  const int group = kGroups == 1 ? 0 : tid / kGroupThreads;
  const int gtid = kGroups == 1 ? tid : tid % kGroupThreads;  // thread index within the group
  const int n0 = cta_n0 + group * kBlockN;  // this group's keys (may start past the sequence end)

  const DkDvSmem<Traits> smem{reinterpret_cast<Element*>(smem_bytes)};
  Tensor sK = smem.key(group);
  Tensor sV = smem.value(group);
  Tensor sP = smem.probs(group);
  Tensor sdS = smem.ds(group);
  // Transposed views: P^T, dS^T (A of dV, dK).
  Tensor sPt = make_tensor(sP.data(), typename Traits::SmemLayoutScoresT{});
  Tensor sPt_shape = make_tensor(sP.data(), typename Traits::SmemLayoutScoresTNoSwizzle{});
  Tensor sdSt = make_tensor(sdS.data(), typename Traits::SmemLayoutScoresT{});
  Tensor sdSt_shape = make_tensor(sdS.data(), typename Traits::SmemLayoutScoresTNoSwizzle{});

  const KeyTileLoader<kBlockN, kHeadDim, kGroupThreads, Element> k_loader(f.k, seq, kv_head, f.head_dim, gtid);
  const KeyTileLoader<kBlockN, kHeadDim, kGroupThreads, Element> v_loader(f.v, seq, kv_head, f.head_dim, gtid);
  k_loader.load(sK, seq, kv_head, f.head_dim, n0, gtid);
  v_loader.load(sV, seq, kv_head, f.head_dim, n0, gtid);

  TiledMma tiled_mma;
  auto thr_mma = tiled_mma.get_thread_slice(gtid);
  TiledMmaKV tiled_mma_kv;
  Tensor acc_dk = partition_fragment_C(tiled_mma_kv, Shape<Int<kBlockN>, Int<kHeadDim>>{});
  Tensor acc_dv = partition_fragment_C(tiled_mma_kv, Shape<Int<kBlockN>, Int<kHeadDim>>{});
  clear(acc_dk);
  clear(acc_dv);
  Tensor coords = thr_mma.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
  Tensor coords_rc = rowcol_view(coords);

  // The query tiles whose rows see some key of the CTA's [cta_n0, cta_n0 + kGroups kBlockN); a
  // group whose keys a tile does not see computes P = dS = 0 for it (causal diagonal, window edges).
  const QueryBlocks blocks = query_blocks_seeing_keys<kBlockM>(f, seq, cta_n0, cta_n0 + kGroups * kBlockN);
  const WindowMask mask(f, seq.seqlen_q, seq.seqlen_k);
  const int steps = (blocks.end - blocks.first) * f.group_size;
  auto issue_step_loads = [&](const BwdStep& at, int stage) {
    Tensor sQ = smem.q(stage);
    Tensor sdO = smem.dout(stage);
    load_step_inputs<kBlockM, kHeadDim, kNThreads, Element>(p, seq, at, sQ, sdO, smem.lse(stage), smem.row_d(stage),
                                                            tid);
  };
  BwdStep current{kv_head * f.group_size, blocks.first};  // the step being computed
  BwdStep next_load = current;                             // the next step whose tiles to load
  if (steps > 0) {
    issue_step_loads(next_load, 0);
    next_load.advance(blocks);
  }
  cp_async_fence();  // one group: K, V and the first step

  for (int step = 0; step < steps; ++step) {
    const int stage = kStages == 1 ? 0 : step % kStages;
    if constexpr (kStages == 1) {
      if (step > 0) {
        __syncthreads();  // the previous step's Q, dO, P, dS are no longer read
        issue_step_loads(next_load, 0);
        next_load.advance(blocks);
        cp_async_fence();
      }
    }
    cp_async_wait<0>();
    __syncthreads();  // this step's tiles landed; every warp finished the previous step
    if constexpr (kStages == 2) {
      if (step + 1 < steps) {
        issue_step_loads(next_load, stage ^ 1);
        next_load.advance(blocks);
        cp_async_fence();
      }
    }
    const int head = current.head, m0 = current.m_block * kBlockM;
    current.advance(blocks);
    const LogitRule rule(f, batch, head, seq.seqlen_q, seq.seqlen_k);
    const uint32_t batch_head = static_cast<uint32_t>(batch * f.h_q + head);
    Tensor sQ = smem.q(stage);
    Tensor sdO = smem.dout(stage);
    // Transposed views: dO^T, Q^T (B of dV, dK).
    Tensor sQt = make_tensor(sQ.data(), typename Traits::SmemLayoutRowsT{});
    Tensor sQt_shape = make_tensor(sQ.data(), typename Traits::SmemLayoutRowsTNoSwizzle{});
    Tensor sdOt = make_tensor(sdO.data(), typename Traits::SmemLayoutRowsT{});
    Tensor sdOt_shape = make_tensor(sdO.data(), typename Traits::SmemLayoutRowsTNoSwizzle{});

    Tensor acc_s = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kBlockN>>{});
    Tensor acc_dp = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kBlockN>>{});
    scores_and_dp<TiledMma, AtomN>(acc_s, acc_dp, sQ, sK, sdO, sV, gtid);
    Tensor s_rc = rowcol_view(acc_s);
    Tensor dp_rc = rowcol_view(acc_dp);
    const float* row_lse = smem.lse(stage);
    const float* row_d = smem.row_d(stage);
    // Only the elementwise step (and the stores of P and dS) differs between edge and interior
    // tiles; the GEMMs around it are shared, so the second copy costs code size, not registers.
    // The stores sit inside each copy: with them after the join, ptxas merged the two copies'
    // spilled acc_s / acc_dp through ~30 stack-to-stack moves per tile.
    // rule_kind: 0 interior tile, 1 exact tile (mask), 2 exact tile with ALiBi.
    auto elementwise = [&](auto rule_kind) __attribute__((always_inline)) {
      constexpr int kRule = decltype(rule_kind)::value;
      score_gradients<Traits::kHasDropout, kSoftcap, kRule >= 1, kRule == 2>(s_rc, dp_rc, coords_rc, row_lse, row_d,
                                                                             rule, mask, f, batch_head, m0, n0);
      store_fragment<TiledMma, Element>(acc_s, sP, gtid);
      store_fragment<TiledMma, Element>(acc_dp, sdS, gtid);
    };
    if (rule.has_alibi) {
      elementwise(Int<2>{});
    } else if (!mask.all_visible(m0, m0 + kBlockM, n0, n0 + kBlockN)) {
      elementwise(Int<1>{});
    } else {
      elementwise(Int<0>{});
    }
    __syncthreads();  // P and dS of every group are in shared memory

    gemm_smem<TiledMmaKV, AtomT, AtomT>(acc_dv, sPt, sPt_shape, sdOt, sdOt_shape, gtid);  // dV += (P Z)^T dO
    gemm_smem<TiledMmaKV, AtomT, AtomT>(acc_dk, sdSt, sdSt_shape, sQt, sQt_shape, gtid);  // dK += dS^T Q
    if constexpr (kFusedDq) fused_dq_step<Traits>(p, seq, batch, head, m0, smem, tid);
  }

  cp_async_wait<0>();  // K / V loads of a CTA whose keys no query sees
  __syncthreads();     // every warp is done with sK / sV: they stage dK / dV now
#pragma unroll
  for (int e = 0; e < size(acc_dk); ++e) acc_dk(e) *= f.softmax_scale;  // dS was left unscaled
  store_fragment<TiledMmaKV, Element>(acc_dk, sK, gtid);
  store_fragment<TiledMmaKV, Element>(acc_dv, sV, gtid);
  __syncthreads();
  // dK / dV are dense or varlen, never paged: key rows a fixed stride apart.
  if (n0 < seq.seqlen_k) {
    Element* dk = static_cast<Element*>(p.dk.data) + seq.key_offset(p.dk, n0, kv_head);
    Element* dv = static_cast<Element*>(p.dv.data) + seq.key_offset(p.dv, n0, kv_head);
    store_strided_rows<kBlockN, kHeadDim, kGroupThreads>(sK, dk, p.dk.row_stride, seq.seqlen_k - n0, f.head_dim,
                                                         p.dk.aligned16, gtid);
    store_strided_rows<kBlockN, kHeadDim, kGroupThreads>(sV, dv, p.dv.row_stride, seq.seqlen_k - n0, f.head_dim,
                                                         p.dv.aligned16, gtid);
  }
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

  // Shared memory: Q, dO, kStages x (K, V), dS, LSE and D rows.
  constexpr int kStages = Traits::kStages;
  Element* base = reinterpret_cast<Element*>(smem);
  Tensor sQ = row_tile<Traits>(base, 0);
  Tensor sdO = row_tile<Traits>(base, 1);
  Element* staged = base + 2 * Traits::kRowsTileElems;  // stage s: K is row tile 2 s, V row tile 2 s + 1
  Element* scores = base + (2 + 2 * kStages) * Traits::kRowsTileElems;
  Tensor sdS = make_tensor(make_smem_ptr(scores), typename Traits::SmemLayoutScores{});
  float* row_lse = reinterpret_cast<float*>(scores + Traits::kScoresTileElems);
  float* row_d = row_lse + kBlockM;

  load_strided_rows<kBlockM, kHeadDim, kNThreads>(sQ, static_cast<const Element*>(f.q.data) + seq.query_offset(f.q, m0, head),
                                                  f.q.row_stride, seq.seqlen_q - m0, f.head_dim, f.q.aligned16, tid);
  load_strided_rows<kBlockM, kHeadDim, kNThreads>(sdO,
                                                  static_cast<const Element*>(p.dout.data) + seq.query_offset(p.dout, m0, head),
                                                  p.dout.row_stride, seq.seqlen_q - m0, f.head_dim, p.dout.aligned16, tid);
  load_row_stats<kBlockM>(p, seq, m0, head, row_lse, row_d, tid);

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
  const KeyTileLoader<kBlockN, kHeadDim, kNThreads, Element> k_loader(f.k, seq, kv_head, f.head_dim, tid);
  const KeyTileLoader<kBlockN, kHeadDim, kNThreads, Element> v_loader(f.v, seq, kv_head, f.head_dim, tid);
  auto issue_kv_loads = [&](int n_block, int stage) {
    Tensor sK = row_tile<Traits>(staged, 2 * stage);
    Tensor sV = row_tile<Traits>(staged, 2 * stage + 1);
    k_loader.load(sK, seq, kv_head, f.head_dim, n_block * kBlockN, tid);
    v_loader.load(sV, seq, kv_head, f.head_dim, n_block * kBlockN, tid);
  };
  if (!range.empty()) issue_kv_loads(range.begin, 0);
  cp_async_fence();  // one group: Q, dO, row statistics and the first K / V

  for (int n_block = range.begin; n_block < range.end; ++n_block) {
    const int n0 = n_block * kBlockN;
    const int stage = kStages == 1 ? 0 : (n_block - range.begin) % kStages;
    if constexpr (kStages == 1) {
      if (n_block > range.begin) {
        __syncthreads();  // the previous tile's K, V, dS are no longer read
        issue_kv_loads(n_block, 0);
        cp_async_fence();
      }
    }
    cp_async_wait<0>();
    __syncthreads();  // this tile's K / V landed; every warp finished the previous tile
    if constexpr (kStages == 2) {
      if (n_block + 1 < range.end) {
        issue_kv_loads(n_block + 1, stage ^ 1);
        cp_async_fence();
      }
    }
    Tensor sK = row_tile<Traits>(staged, 2 * stage);
    Tensor sV = row_tile<Traits>(staged, 2 * stage + 1);
    Tensor sKt = make_tensor(sK.data(), typename Traits::SmemLayoutRowsT{});
    Tensor sKt_shape = make_tensor(sK.data(), typename Traits::SmemLayoutRowsTNoSwizzle{});

    auto visit = [&](auto rule_kind) __attribute__((always_inline)) {
      constexpr int kRule = decltype(rule_kind)::value;  // as the dK/dV kernel's elementwise step
      Tensor acc_s = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kBlockN>>{});
      Tensor acc_dp = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kBlockN>>{});
      scores_and_dp<TiledMma, AtomN>(acc_s, acc_dp, sQ, sK, sdO, sV, tid);
      Tensor s_rc = rowcol_view(acc_s);
      Tensor dp_rc = rowcol_view(acc_dp);
      score_gradients<Traits::kHasDropout, kSoftcap, kRule >= 1, kRule == 2>(s_rc, dp_rc, coords_rc, row_lse, row_d,
                                                                             rule, mask, f, batch_head, m0, n0);
      store_fragment<TiledMma, Element>(acc_dp, sdS, tid);
      __syncthreads();
      gemm_smem<TiledMma, AtomN, AtomT>(acc_dq, sdS, sdS, sKt, sKt_shape, tid);  // dQ += dS K
    };
    if (rule.has_alibi) {
      visit(Int<2>{});
    } else if (!mask.all_visible(m0, m0 + kBlockM, n0, n0 + kBlockN)) {
      visit(Int<1>{});
    } else {
      visit(Int<0>{});
    }
  }

  cp_async_wait<0>();
  __syncthreads();  // every warp is done with sQ: it stages dQ now
#pragma unroll
  for (int e = 0; e < size(acc_dq); ++e) acc_dq(e) *= f.softmax_scale;  // dS was left unscaled
  if (seq.index_errors) {  // a bad index (seqlen_info.cuh): NaN, not the gradient of "no keys"
#pragma unroll
    for (int e = 0; e < size(acc_dq); ++e) acc_dq(e) = NAN;
  }
  store_fragment<TiledMma, Element>(acc_dq, sQ, tid);
  __syncthreads();
  Element* dq = static_cast<Element*>(p.dq.data) + seq.query_offset(p.dq, m0, head);
  store_strided_rows<kBlockM, kHeadDim, kNThreads>(sQ, dq, p.dq.row_stride, seq.seqlen_q - m0, f.head_dim,
                                                   p.dq.aligned16, tid);
}

template <typename Traits, bool kFusedDq>
__global__ void __launch_bounds__(Traits::kNThreadsDkDv) bwd_dkdv_kernel_sm80(const __grid_constant__ BwdParams p) {
  extern __shared__ __align__(128) char smem[];
  with_softcap_policy(p.fwd.softcap, [&](auto softcap) __attribute__((always_inline)) {
    bwd_dkdv_tile_sm80<Traits, decltype(softcap)::value, kFusedDq>(p, smem);
  });
}

template <typename Traits>
__global__ void __launch_bounds__(Traits::kNThreads) bwd_dq_kernel_sm80(const __grid_constant__ BwdParams p) {
  extern __shared__ __align__(128) char smem[];
  with_softcap_policy(p.fwd.softcap, [&](auto softcap) __attribute__((always_inline)) { bwd_dq_tile_sm80<Traits, decltype(softcap)::value>(p, smem); });
}

}  // namespace kernels
}  // namespace flashplus
