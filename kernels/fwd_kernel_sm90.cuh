// fwd_kernel_sm90.cuh — the sm90 (wgmma) forward kernel: one CTA = one 128-row query tile of one
// head (or one packed GQA group) and one split of its keys, two warpgroups of 64 rows each.
// Orchestration only; it shares every piece but the MMAs with the sm80 kernel:
//   tile_scheduler.cuh, query_rows.cuh, seqlen_info.cuh, block_info.cuh   which rows and keys
//   logit_tile.cuh (mask.cuh)   scale, softcap, ALiBi, causal / window mask
//   softmax_online.cuh          running max / sum, LSE
//   key_tile_loader_sm80.cuh, tile_io_sm80.cuh   cp.async row loads (strided K/V only)
//   fwd_mainloop_sm90.cuh       the wgmma GEMMs;   fwd_epilogue.cuh   O and LSE stores
//
// Which calls it serves (cuda_backend.cu): compute capability 9.0, no dropout, K/V rows a fixed
// stride apart (dense, varlen) and 16-byte aligned, more than 16 tile rows; everything else runs
// the sm80 kernels.
//
// Pipeline: key tiles are visited from last to first, so the tiles that need masking (sequence
// end, causal diagonal) come first. Each step issues S = Q K^T of its tile and O += P V of the tile
// before, and runs its softmax while the second MMA still runs: the tensor cores are not idle
// during the exponentials (456 against 412 TFLOP/s without the overlap, H200, d = 128, s = 8k).
// K and V each have Traits::kStages buffers, refilled by cp.async kStages - 1 steps ahead (details
// at the loop).
#pragma once

#include <type_traits>

#include <cute/tensor.hpp>

#include "block_info.cuh"
#include "dependent_launch.cuh"
#include "fragment_layout.cuh"
#include "fwd_epilogue.cuh"
#include "fwd_mainloop_sm90.cuh"
#include "fwd_params.h"
#include "fwd_query_tile.cuh"
#include "key_tile_loader_sm80.cuh"
#include "logit_tile.cuh"
#include "mask.cuh"
#include "query_rows.cuh"
#include "seqlen_info.cuh"
#include "softmax_online.cuh"
#include "tile_scheduler.cuh"

namespace flashplus {
namespace kernels {

template <typename Traits, bool kSoftcap>
__device__ __forceinline__ void fwd_tile_sm90(const FwdParams& p, const FwdTile& tile, char* smem) {
  using namespace cute;
  using Element = typename Traits::Element;
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kNThreads = Traits::kNThreads;

  const int tid = threadIdx.x;
  const SeqlenInfo seq(p, tile.batch);
  const QueryRows rows(p, tile.head, seq.seqlen_q);
  const QueryTile<kBlockM> query_tile(p, tile, rows);
  if (query_tile.past_end) return;
  const int m0 = query_tile.m0;
  const int kv_head = query_tile.kv_head;
  const int first_query = query_tile.first_query;
  const int last_query = query_tile.last_query;

  Element* smem_q = reinterpret_cast<Element*>(smem);
  Element* smem_k = smem_q + Traits::kSmemQElems;
  Element* smem_v = smem_k + Traits::kSmemKVElems;
  Tensor sQ = make_tensor(make_smem_ptr(smem_q), typename Traits::SmemLayoutQ{});    // (kBlockM, kHeadDim)
  Tensor sK = make_tensor(make_smem_ptr(smem_k), typename Traits::SmemLayoutKV{});   // (kBlockN, kHeadDim, stage)
  Tensor sV = make_tensor(make_smem_ptr(smem_v), typename Traits::SmemLayoutKV{});   // (kBlockN, kHeadDim, stage)
  Tensor sVt = make_tensor(make_smem_ptr(smem_v), typename Traits::SmemLayoutVt{});  // (kHeadDim, kBlockN, stage)

  typename Traits::TiledMmaQK mma_qk;
  typename Traits::TiledMmaPV mma_pv;
  auto thr_qk = mma_qk.get_thread_slice(tid);
  auto thr_pv = mma_pv.get_thread_slice(tid);
  Tensor tSrQ = thr_qk.partition_fragment_A(sQ);   // (MMA, MMA_M, MMA_K) descriptors
  Tensor tSrK = thr_qk.partition_fragment_B(sK);   // (MMA, MMA_N, MMA_K, stage)
  Tensor tOrVt = thr_pv.partition_fragment_B(sVt); // (MMA, MMA_N, MMA_K, stage)

  Tensor acc_o = partition_fragment_C(mma_pv, Shape<Int<kBlockM>, Int<kHeadDim>>{});
  clear(acc_o);
  Tensor acc_o_rc = rowcol_view(acc_o);
  constexpr int kRows = decltype(size<0>(acc_o_rc))::value;
  OnlineSoftmax<kRows> softmax;

  const KeyBlockRange range = key_block_range_for_queries<kBlockN>(p, first_query, last_query, seq.seqlen_q,
                                                                   seq.seqlen_k, tile.split, p.num_splits);
  if (!range.empty()) {
    using Loader = KeyTileLoader<kBlockN, kHeadDim, kNThreads, Element, KvLoad::kStrided>;
    const Loader k_loader(p.k, seq, kv_head, p.head_dim, tid);
    const Loader v_loader(p.v, seq, kv_head, p.head_dim, tid);
    auto load_k = [&](int n_block, int buffer) {
      Tensor sK_buffer = sK(_, _, buffer);
      k_loader.load(sK_buffer, seq, kv_head, p.head_dim, n_block * kBlockN, tid);
    };
    auto load_v = [&](int n_block, int buffer) {
      Tensor sV_buffer = sV(_, _, buffer);
      v_loader.load(sV_buffer, seq, kv_head, p.head_dim, n_block * kBlockN, tid);
    };

    // Tile j (n_block = range.end - 1 - j) lives in K and V buffer j % kStages. cp.async group 0 is
    // Q and K(0); group i >= 1 is V(i - 1) and K(i), the pair step i consumes (V one step after its
    // K). Groups 0 .. kStages - 2 go out here; step j issues group j + kStages - 1.
    constexpr int kStages = Traits::kStages;
    load_query_tile<kBlockM, kHeadDim, kNThreads, Element>(sQ, p, seq, rows, m0, tid);
    load_k(range.end - 1, 0);
    cp_async_fence();
    auto issue_group = [&](int group) __attribute__((always_inline)) {
      const int v_block = range.end - group;  // tile group - 1
      if (v_block >= range.begin) load_v(v_block, (group - 1) % kStages);
      if (v_block - 1 >= range.begin) load_k(v_block - 1, group % kStages);
      cp_async_fence();  // even when empty: every step then waits for the same group count
    };
#pragma unroll
    for (int group = 1; group <= kStages - 2; ++group) issue_group(group);

    const LogitRule rule(p, tile.batch, rows.first_head, seq.seqlen_q, seq.seqlen_k);
    const WindowMask mask(p, seq.seqlen_q, seq.seqlen_k);
    Tensor coords_s = thr_qk.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
    Tensor coords_s_rc = rowcol_view(coords_s);

    // S of key tile n_block becomes logits (exact tiles, softcap) and then probabilities; returns
    // through out_rescale the factor the output so far must be scaled by. rule: 0 interior tile
    // (scale only), 1 exact tile (mask), 2 exact tile with ALiBi, compile-time policies chosen per
    // tile (logit_tile.cuh says why); only this part of the step exists three times.
    auto softmax_tile = [&](auto& acc_s, int n_block, auto rule_kind, float* out_rescale)
                            __attribute__((always_inline)) {
      constexpr bool kExact = decltype(rule_kind)::value >= 1;
      constexpr bool kAlibi = decltype(rule_kind)::value == 2;
      Tensor acc_s_rc = rowcol_view(acc_s);
      if constexpr (!kRawScores<kSoftcap, kExact>) {
        int row_query[kRows] = {};
        if constexpr (kExact) {
#pragma unroll
          for (int r = 0; r < kRows; ++r) row_query[r] = rows.query(m0 + get<0>(coords_s_rc(r, 0)));
        }
        apply_logit_rule<kSoftcap, kExact, kAlibi>(acc_s_rc, coords_s_rc, rule, mask, row_query, n_block * kBlockN);
      }
      softmax.update(acc_s_rc, kRawScores<kSoftcap, kExact> ? rule.scale_log2 : 1.f, out_rescale);
    };
    auto softmax_tile_by_rule = [&](auto& acc_s, int n_block, float* out_rescale) __attribute__((always_inline)) {
      const int n0 = n_block * kBlockN;
      if (rule.has_alibi) {
        softmax_tile(acc_s, n_block, Int<2>{}, out_rescale);
      } else if (!mask.all_visible(first_query, last_query + 1, n0, n0 + kBlockN)) {
        softmax_tile(acc_s, n_block, Int<1>{}, out_rescale);
      } else {
        softmax_tile(acc_s, n_block, Int<0>{}, out_rescale);
      }
    };
    // P in registers, in the layout of the P V MMA's A operand.
    Tensor rP = make_tensor<Element>(partition_shape_A(mma_pv, Shape<Int<kBlockM>, Int<kBlockN>>{}));
    auto convert_p = [&](const auto& acc_s) __attribute__((always_inline)) {
      Tensor tOrP_as_acc = make_tensor(rP.data(), acc_s.layout());
      static_assert(std::is_same_v<decltype(wgmma_acc_as_a_operand_layout(acc_s.layout())), decltype(rP.layout())>,
                    "S's registers, re-viewed as an A operand, are laid out as the P V MMA's A fragment");
#pragma unroll
      for (int e = 0; e < size(acc_s); ++e) tOrP_as_acc(e) = Element(acc_s(e));
    };

    // Software-pipelined over key tiles: the softmax of tile n runs while the tensor cores do
    // O += P V of tile n + 1 (visited before it). Step j waits for group j (K(j), V(j - 1)), reads
    // K(j) from buffer j % kStages and V(j - 1) from buffer (j - 1) % kStages, and then issues
    // group j + kStages - 1 into K buffer (j - 1) % kStages and V buffer (j - 2) % kStages, whose
    // last readers (S of step j - 1, O += P V of step j - 1) every warpgroup has finished at the
    // barrier that opens step j.
    int step = 0;
    for (int n_block = range.end - 1; n_block >= range.begin; --n_block, ++step) {
      const int buffer = step % kStages;
      const int previous_buffer = (step + kStages - 1) % kStages;
      cp_async_wait<kStages - 2>();
      make_tile_visible_to_wgmma();
      __syncthreads();
      issue_group(step + kStages - 1);
      Tensor acc_s = partition_fragment_C(mma_qk, Shape<Int<kBlockM>, Int<kBlockN>>{});
      wgmma_issue</*kZeroInit=*/true>(mma_qk, tSrQ, tSrK(_, _, _, buffer), acc_s);
      float out_rescale[kRows];
      if (step > 0) {
        wgmma_issue</*kZeroInit=*/false>(mma_pv, rP, tOrVt(_, _, _, previous_buffer), acc_o);
        wgmma_wait<1>(acc_s);  // S of this tile; O += P V of the previous one may still run
        softmax_tile_by_rule(acc_s, n_block, out_rescale);
        wgmma_wait<0>(acc_o, rP);
      } else {
        wgmma_wait<0>(acc_s);
        softmax_tile_by_rule(acc_s, n_block, out_rescale);
      }
      softmax.rescale(acc_o_rc, out_rescale);
      convert_p(acc_s);
    }
    // The last tile's O += P V, once its V has landed.
    cp_async_wait<0>();
    make_tile_visible_to_wgmma();
    __syncthreads();
    wgmma_issue</*kZeroInit=*/false>(mma_pv, rP, tOrVt(_, _, _, (step - 1) % kStages), acc_o);
    wgmma_wait<0>(acc_o, rP);
  }

  make_tile_visible_to_wgmma();  // the epilogue stages O in the Q tile, which wgmma (the async proxy) read
  finish_query_tile<Traits>(p, seq, rows, tile, softmax, acc_o, 1.f, sQ, tid);
}

// One CTA per SM (256 threads at up to 255 registers each fill the register file), two at d = 64
// (tile_shape.h: fwd_tile_shape_sm90).
template <typename Traits>
__global__ void __launch_bounds__(Traits::kNThreads, Traits::kCtasPerSm) fwd_kernel_sm90(const __grid_constant__ FwdParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) char smem[];
  allow_dependent_launch();  // the split-KV combine may be scheduled early (dependent_launch.cuh)
  const FwdTile tile = StaticTileScheduler::tile(p, static_cast<int>(blockIdx.x));
  with_softcap_policy(p.softcap, [&](auto softcap) __attribute__((always_inline)) {
    fwd_tile_sm90<Traits, decltype(softcap)::value>(p, tile, smem);
  });
#endif
}

}  // namespace kernels
}  // namespace flashplus
