// bwd_kernel_sm90.cuh — the sm90 (wgmma) backward: one CTA per key tile of one K/V head (128 keys,
// one warpgroup per 64; 64 keys above d = 128), dK and dV accumulated in registers over every
// (query head of the GQA group, query tile) pair that sees the keys, dQ added into the fp32
// dq_accum with atomics (the fused mode of bwd_kernel_sm80.cuh; the post-pass scales and converts
// it). Orchestration only; the shared pieces:
//   bwd_tile_common.cuh    which query tiles, row statistics, dQ atomics (shared with sm80)
//   bwd_mainloop_sm90.cuh  P^T and dS^T from S^T and dP^T, register conversions
//   fwd_mainloop_sm90.cuh  issuing and waiting for wgmma groups
//   key_tile_loader_sm80.cuh, tile_io_sm80.cuh   cp.async row loads and stores
//
// Which calls it serves (cuda_backend.cu): compute capability 9.0, no dropout, not
// deterministic, K/V rows a fixed stride apart and 16-byte aligned, head dims 64, 128 and 256.
//
// Per step (query tile), five products (bwd_traits_sm90.cuh) in an order that keeps the tensor
// cores busy during the elementwise work. Up to d = 128 (each warpgroup owns its keys):
//   issue S^T, dP^T | wait S^T, P^T = exp(..)  (dP^T runs) |
//   issue dV += P^T dO | wait dP^T, dS^T = P^T (dP^T - D)  (dV runs) | dS^T -> shared memory,
//   barrier | issue dQ = dS K, issue dK += dS^T Q | wait dQ, dQ atomics (dK runs) | wait dK.
// Above d = 128 (the warpgroups split query columns, then features):
//   issue S^T, dP^T | wait S^T, P^T -> shared memory (dP^T runs) | wait dP^T, dS^T -> shared
//   memory | barrier | issue dQ, dV, dK | wait dQ, dQ atomics (dV, dK run) | wait dV, dK.
// Q, dO and their row statistics are double-buffered: the next step's copies start right after
// the barrier that opens a step.
#pragma once

#include <cute/tensor.hpp>

#include "bwd_mainloop_sm90.cuh"
#include "bwd_params.h"
#include "bwd_tile_common.cuh"
#include "dq_accum.cuh"
#include "fragment_layout.cuh"
#include "fwd_mainloop_sm90.cuh"
#include "key_tile_loader_sm80.cuh"
#include "mask.cuh"
#include "seqlen_info.cuh"
#include "tile_io_sm80.cuh"

namespace flashplus {
namespace kernels {

// CTAs per (batch entry, K/V head): key tiles of the longest sequence.
template <typename Traits>
__host__ __device__ __forceinline__ int key_ctas_sm90(const FwdParams& f) {
  return (f.max_seqlen_k + Traits::kBlockN - 1) / Traits::kBlockN;
}

template <typename Traits, bool kSoftcap>
__device__ __forceinline__ void bwd_dkdv_tile_sm90(const BwdParams& p, char* smem_bytes) {
  using namespace cute;
  using Element = typename Traits::Element;
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kNThreads = Traits::kNThreads;
  static_assert(Traits::kStages == 2, "the loop's buffer reuse assumes two Q / dO stages");
  const FwdParams& f = p.fwd;

  // Key-tile-major within a head: the CTAs of the first keys, which causal masking gives the most
  // query tiles, start first.
  const int num_key_ctas = key_ctas_sm90<Traits>(f);
  int linear = static_cast<int>(blockIdx.x);
  const int key_cta = linear % num_key_ctas;
  linear /= num_key_ctas;
  const int kv_head = linear % f.h_k;
  const int batch = linear / f.h_k;
  const SeqlenInfo seq(f, batch);
  const int n0 = key_cta * kBlockN;
  if (n0 >= seq.seqlen_k) return;
  const int tid = threadIdx.x;

  Element* smem_k = reinterpret_cast<Element*>(smem_bytes);
  Element* smem_v = smem_k + Traits::kSmemKVElems;
  Element* smem_q = smem_v + Traits::kSmemKVElems;
  Element* smem_do = smem_q + Traits::kSmemQElems;
  Element* smem_ds = smem_do + Traits::kSmemQElems;
  Element* smem_p = smem_ds + Traits::kSmemDsElems;  // P^T, only when the features are split
  float* smem_stats = reinterpret_cast<float*>(smem_p + Traits::kSmemPElems);  // stage s: LSE, then D
  Tensor sK = make_tensor(make_smem_ptr(smem_k), typename Traits::SmemLayoutKV{});     // (kBlockN, d)
  Tensor sKt = make_tensor(make_smem_ptr(smem_k), typename Traits::SmemLayoutKt{});    // (d, kBlockN)
  Tensor sV = make_tensor(make_smem_ptr(smem_v), typename Traits::SmemLayoutKV{});
  Tensor sQ = make_tensor(make_smem_ptr(smem_q), typename Traits::SmemLayoutQ{});      // (kBlockM, d, stage)
  Tensor sQt = make_tensor(make_smem_ptr(smem_q), typename Traits::SmemLayoutQt{});    // (d, kBlockM, stage)
  Tensor sdO = make_tensor(make_smem_ptr(smem_do), typename Traits::SmemLayoutQ{});
  Tensor sdOt = make_tensor(make_smem_ptr(smem_do), typename Traits::SmemLayoutQt{});
  Tensor sDsT = make_tensor(make_smem_ptr(smem_ds), typename Traits::SmemLayoutDsT{});  // (kBlockN, kBlockM)
  Tensor sDs = make_tensor(make_smem_ptr(smem_ds), typename Traits::SmemLayoutDs{});    // (kBlockM, kBlockN)
  Tensor sPt = make_tensor(make_smem_ptr(smem_p), typename Traits::SmemLayoutDsT{});    // (kBlockN, kBlockM)

  typename Traits::TiledMmaSdP mma_sdp;
  typename Traits::TiledMmaKV mma_kv;
  typename Traits::TiledMmaDq mma_dq;
  auto thr_sdp = mma_sdp.get_thread_slice(tid);
  auto thr_kv = mma_kv.get_thread_slice(tid);
  auto thr_dq = mma_dq.get_thread_slice(tid);
  // wgmma operand descriptors: (MMA, MMA_M | MMA_N, MMA_K[, stage]).
  Tensor tSrK = thr_sdp.partition_fragment_A(sK);
  Tensor tSrQ = thr_sdp.partition_fragment_B(sQ);
  Tensor tDPrV = thr_sdp.partition_fragment_A(sV);
  Tensor tDPrdO = thr_sdp.partition_fragment_B(sdO);
  Tensor tDVrdOt = thr_kv.partition_fragment_B(sdOt);
  Tensor tDKrQt = thr_kv.partition_fragment_B(sQt);
  Tensor tDQrDs = thr_dq.partition_fragment_A(sDs);
  // K^T by dQ pass: (kDqFeaturesPerPass, kBlockN, pass).
  Tensor tDQrKt = thr_dq.partition_fragment_B(
      local_tile(sKt, Shape<Int<Traits::kDqFeaturesPerPass>, Int<kBlockN>>{}, make_coord(_, 0)));
  Tensor tDsTsDsT = thr_sdp.partition_C(sDsT);  // this thread's dS^T values in shared memory
  Tensor tPtsPt = thr_sdp.partition_C(sPt);      // and its P^T values (split features only)

  Tensor acc_dk = partition_fragment_C(mma_kv, Shape<Int<kBlockN>, Int<kHeadDim>>{});
  Tensor acc_dv = partition_fragment_C(mma_kv, Shape<Int<kBlockN>, Int<kHeadDim>>{});
  clear(acc_dk);
  clear(acc_dv);
  Tensor coords_rc = rowcol_view(thr_sdp.partition_C(make_identity_tensor(Shape<Int<kBlockN>, Int<kBlockM>>{})));
  Tensor coords_dq = thr_dq.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<Traits::kDqFeaturesPerPass>>{}));

  using Loader = KeyTileLoader<kBlockN, kHeadDim, kNThreads, Element, KvLoad::kStrided>;
  {
    const Loader k_loader(f.k, seq, kv_head, f.head_dim, tid);
    const Loader v_loader(f.v, seq, kv_head, f.head_dim, tid);
    k_loader.load(sK, seq, kv_head, f.head_dim, n0, tid);
    v_loader.load(sV, seq, kv_head, f.head_dim, n0, tid);
  }

  const QueryBlocks blocks = query_blocks_seeing_keys<kBlockM>(f, seq, n0, n0 + kBlockN);
  const WindowMask mask(f, seq.seqlen_q, seq.seqlen_k);
  const int steps = (blocks.end - blocks.first) * f.group_size;
  auto issue_step_loads = [&](const BwdStep& at, int stage) {
    Tensor sQ_stage = sQ(_, _, stage);
    Tensor sdO_stage = sdO(_, _, stage);
    float* stats = smem_stats + 2 * stage * kBlockM;
    load_step_inputs<kBlockM, kHeadDim, kNThreads, Element>(p, seq, at, sQ_stage, sdO_stage, stats, stats + kBlockM,
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
    const int stage = step & 1;
    cp_async_wait<0>();
    make_tile_visible_to_wgmma();
    // This step's tiles landed; every warpgroup finished the previous step, whose buffer the
    // next loads overwrite and whose dS (read by its dQ product, waited for) is replaced below.
    __syncthreads();
    if (step + 1 < steps) {
      issue_step_loads(next_load, stage ^ 1);
      next_load.advance(blocks);
      cp_async_fence();
    }
    const int head = current.head, m0 = current.m_block * kBlockM;
    current.advance(blocks);
    const LogitRule rule(f, batch, head, seq.seqlen_q, seq.seqlen_k);
    const float* row_lse = smem_stats + 2 * stage * kBlockM;
    const float* row_d = row_lse + kBlockM;

    Tensor acc_s = partition_fragment_C(mma_sdp, Shape<Int<kBlockN>, Int<kBlockM>>{});
    Tensor acc_dp = partition_fragment_C(mma_sdp, Shape<Int<kBlockN>, Int<kBlockM>>{});
    wgmma_issue</*kZeroInit=*/true>(mma_sdp, tSrK, tSrQ(_, _, _, stage), acc_s);
    wgmma_issue</*kZeroInit=*/true>(mma_sdp, tDPrV, tDPrdO(_, _, _, stage), acc_dp);
    Tensor s_rc = rowcol_view(acc_s);
    Tensor dp_rc = rowcol_view(acc_dp);
    // 1 - tanh^2 of the softcap's chain rule (without softcap never touched, so never allocated).
    Tensor dtanh = make_fragment_like(acc_s);
    Tensor dtanh_rc = rowcol_view(dtanh);

    wgmma_wait<1>(acc_s);  // S^T; dP^T may still run
    // rule: 0 interior tile (scale only), 1 exact tile (mask), 2 exact tile with ALiBi.
    auto probabilities = [&](auto rule_kind) __attribute__((always_inline)) {
      constexpr int kRule = decltype(rule_kind)::value;
      probabilities_transposed<kSoftcap, kRule >= 1, kRule == 2>(s_rc, dtanh_rc, coords_rc, row_lse, rule, mask, m0,
                                                                 n0);
    };
    if (rule.has_alibi) {
      probabilities(Int<2>{});
    } else if (!mask.all_visible(m0, m0 + kBlockM, n0, n0 + kBlockN)) {
      probabilities(Int<1>{});
    } else {
      probabilities(Int<0>{});
    }
    if constexpr (Traits::kSplitFeatures) {
      store_accumulator<Element>(acc_s, tPtsPt);
      wgmma_wait<0>(acc_dp);
      score_gradients_transposed<kSoftcap>(s_rc, dp_rc, dtanh_rc, coords_rc, row_d);
      store_accumulator<Element>(acc_dp, tDsTsDsT);
      make_tile_visible_to_wgmma();
      __syncthreads();  // P^T and dS^T of both warpgroups are in shared memory

      // wgmma groups complete in order: each dQ pass's atomics run while dV or dK does.
      static_assert(Traits::kDqPasses == 2);
      Tensor tDVrPt = thr_kv.partition_fragment_A(sPt);    // dV's and dK's A operands, in shared
      Tensor tDKrDsT = thr_kv.partition_fragment_A(sDsT);  // memory (descriptors)
      float* dq_rows = p.dq_accum + dq_accum_offset(p, seq, batch, m0, head);
      const int64_t dq_pitch = static_cast<int64_t>(f.h_q) * p.dq_accum_head_dim;
      Tensor acc_dq = partition_fragment_C(mma_dq, Shape<Int<kBlockM>, Int<Traits::kDqFeaturesPerPass>>{});
      wgmma_issue</*kZeroInit=*/true>(mma_dq, tDQrDs, tDQrKt(_, _, _, 0), acc_dq);         // dQ, first features
      wgmma_issue</*kZeroInit=*/false>(mma_kv, tDVrPt, tDVrdOt(_, _, _, stage), acc_dv);   // dV += P^T dO
      wgmma_wait<1>(acc_dq);
      atomic_add_fragment(dq_rows, dq_pitch, acc_dq, coords_dq);
      wgmma_issue</*kZeroInit=*/true>(mma_dq, tDQrDs, tDQrKt(_, _, _, 1), acc_dq);         // dQ, the others
      wgmma_issue</*kZeroInit=*/false>(mma_kv, tDKrDsT, tDKrQt(_, _, _, stage), acc_dk);   // dK += dS^T Q
      wgmma_wait<1>(acc_dq);
      atomic_add_fragment(dq_rows + Traits::kDqFeaturesPerPass, dq_pitch, acc_dq, coords_dq);
      wgmma_wait<0>(acc_dv, acc_dk);  // closes the step (see below)
    } else {
      Tensor rP = make_tensor<Element>(partition_shape_A(mma_kv, Shape<Int<kBlockN>, Int<kBlockM>>{}));
      convert_to_a_operand<Element>(acc_s, rP);
      wgmma_issue</*kZeroInit=*/false>(mma_kv, rP, tDVrdOt(_, _, _, stage), acc_dv);  // dV += P^T dO

      wgmma_wait<1>(acc_dp);  // dP^T; dV may still run
      score_gradients_transposed<kSoftcap>(s_rc, dp_rc, dtanh_rc, coords_rc, row_d);
      Tensor rdS = make_tensor<Element>(partition_shape_A(mma_kv, Shape<Int<kBlockN>, Int<kBlockM>>{}));
      convert_to_a_operand<Element>(acc_dp, rdS);
      store_accumulator<Element>(acc_dp, tDsTsDsT);
      make_tile_visible_to_wgmma();
      __syncthreads();  // dS^T of both warpgroups is in shared memory

      // dQ before dK: wgmma groups complete in order, so the dQ atomics below run while dK does.
      Tensor acc_dq = partition_fragment_C(mma_dq, Shape<Int<kBlockM>, Int<kHeadDim>>{});
      wgmma_issue</*kZeroInit=*/true>(mma_dq, tDQrDs, tDQrKt(_, _, _, 0), acc_dq);     // dQ = dS K (one pass)
      wgmma_issue</*kZeroInit=*/false>(mma_kv, rdS, tDKrQt(_, _, _, stage), acc_dk);  // dK += dS^T Q
      wgmma_wait<1>(acc_dv, rP, acc_dq);
      atomic_add_fragment(p.dq_accum + dq_accum_offset(p, seq, batch, m0, head),
                          static_cast<int64_t>(f.h_q) * p.dq_accum_head_dim, acc_dq, coords_dq);
      // dK's wait closes the step: a wgmma group left in flight across the loop's back edge made
      // ptxas serialise every wgmma of the kernel (warning C7515), wherever the wait was placed.
      wgmma_wait<0>(acc_dk, rdS);
    }
  }

  cp_async_wait<0>();  // K / V loads of a CTA whose keys no query sees
  make_tile_visible_to_wgmma();  // sK / sV, read by wgmma (the async proxy), now stage dK / dV
  __syncthreads();
#pragma unroll
  for (int e = 0; e < size(acc_dk); ++e) acc_dk(e) *= f.softmax_scale;  // dS was left unscaled
  store_accumulator<Element>(acc_dk, thr_kv.partition_C(sK));
  store_accumulator<Element>(acc_dv, thr_kv.partition_C(sV));
  __syncthreads();
  // dK / dV are dense or varlen, never paged: key rows a fixed stride apart.
  Element* dk = static_cast<Element*>(p.dk.data) + seq.key_offset(p.dk, n0, kv_head);
  Element* dv = static_cast<Element*>(p.dv.data) + seq.key_offset(p.dv, n0, kv_head);
  store_strided_rows<kBlockN, kHeadDim, kNThreads>(sK, dk, p.dk.row_stride, seq.seqlen_k - n0, f.head_dim,
                                                   p.dk.aligned16, tid);
  store_strided_rows<kBlockN, kHeadDim, kNThreads>(sV, dv, p.dv.row_stride, seq.seqlen_k - n0, f.head_dim,
                                                   p.dv.aligned16, tid);
}

// One CTA per SM: 256 threads at up to 255 registers each fill the register file.
template <typename Traits>
__global__ void __launch_bounds__(Traits::kNThreads, 1) bwd_dkdv_kernel_sm90(const __grid_constant__ BwdParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) char smem[];
  with_softcap_policy(p.fwd.softcap, [&](auto softcap) __attribute__((always_inline)) {
    bwd_dkdv_tile_sm90<Traits, decltype(softcap)::value>(p, smem);
  });
#endif
}

}  // namespace kernels
}  // namespace flashplus
