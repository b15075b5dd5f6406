// fwd_kernel_sm80.cuh — the sm80 forward kernel: one CTA = one query tile of one head (and one
// split of its keys). Orchestration only; the pieces live in:
//   tile_scheduler.cuh   which tile this CTA owns
//   query_rows.cuh       which (query, head) each tile row holds (packed GQA for decode)
//   seqlen_info.cuh      where the sequence's rows are (dense / varlen / paged / leftpad)
//   block_info.cuh       which key tiles to visit (causal, window, split)
//   mask.cuh             logit rule (scale, softcap, ALiBi) and window mask
//   softmax_online.cuh   running max / sum, LSE
//   fwd_mainloop_sm80.cuh loads and MMAs;  fwd_epilogue.cuh  O and LSE stores
//
// The decode tile's warps split the keys (fwd_traits_sm80.cuh): warp w computes S and P V for keys
// 16 w .. 16 w + 15 of every tile with its own running softmax, and merge_key_split_warps() folds
// the warps' (max, sum, O) into warp 0, which stores the tile (flash-decoding inside one CTA).
//
// Pipeline (one K and one V buffer): key tiles are visited from last to first, so the tiles that
// need masking (the sequence end, the causal diagonal) come first. While S = Q K^T runs, V of the
// same tile streams in; while softmax and P V run, K of the next tile streams in.
#pragma once

#include <cute/tensor.hpp>

#include "block_info.cuh"
#include "dependent_launch.cuh"
#include "dropout_sm80.cuh"
#include "fragment_layout.cuh"
#include "fwd_epilogue.cuh"
#include "fwd_mainloop_sm80.cuh"
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

// Folds the softmax states and outputs of the key-split warps into warp 0 (the others return
// false and are done). Every warp's fragments have the same (lane, element) -> (row, column)
// mapping (one-warp TiledMma over the same 16 x d tile), so lane l of warp w merges with lane l of
// warp 0 element by element; a row sum is still a lane's partial (finalize() sums the quad), and
// scaling partials by the same factor before adding them is exact. The K/V buffers hold the
// exchange: every warp has finished its last P V (barrier), and no copy is in flight.
template <typename Traits, typename Softmax, typename AccO>
__device__ __forceinline__ bool merge_key_split_warps(Softmax& softmax, AccO& acc_o, char* exchange_smem, int tid) {
  using namespace cute;
  constexpr int kWarps = Traits::kKeySplitWarps;
  constexpr int kRows = decltype(size<0>(rowcol_view(acc_o)))::value;
  constexpr int kValues = decltype(size(acc_o))::value;
  constexpr int kPerLane = kValues + 2 * kRows;  // O, then row max, then row sum
  static_assert((kWarps - 1) * kPerLane * 32 * int(sizeof(float)) <=
                    2 * Traits::kKvStages * Traits::kSmemKVElems * int(sizeof(typename Traits::Element)),
                "the exchange fits in the K and V buffers");
  float* exchange = reinterpret_cast<float*>(exchange_smem);
  const int warp = tid / 32;
  const int lane = tid % 32;
  cp_async_wait<0>();
  __syncthreads();  // every warp finished reading K and V
  if (warp > 0) {
    float* mine = exchange + (warp - 1) * kPerLane * 32 + lane;  // value i at mine[32 i]: conflict-free
#pragma unroll
    for (int i = 0; i < kValues; ++i) mine[32 * i] = acc_o(i);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      mine[32 * (kValues + r)] = softmax.row_max[r];
      mine[32 * (kValues + kRows + r)] = softmax.row_sum[r];
    }
  }
  __syncthreads();
  if (warp > 0) return false;
  Tensor acc_o_rc = rowcol_view(acc_o);
  constexpr int kCols = decltype(size<1>(acc_o_rc))::value;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    float other_max[kWarps - 1];
    float merged_max = softmax.row_max[r];
#pragma unroll
    for (int w = 0; w < kWarps - 1; ++w) {
      other_max[w] = exchange[(w * kPerLane + kValues + r) * 32 + lane];
      merged_max = fmaxf(merged_max, other_max[w]);
    }
    // Base 0 for a row no warp saw a key of (all maxima -inf): every factor is then 0, never NaN.
    const float base = merged_max == -INFINITY ? 0.f : merged_max;
    const float own_scale = fast_exp2(softmax.row_max[r] - base);
    softmax.row_sum[r] *= own_scale;
#pragma unroll
    for (int c = 0; c < kCols; ++c) acc_o_rc(r, c) *= own_scale;
#pragma unroll
    for (int w = 0; w < kWarps - 1; ++w) {
      const float scale = fast_exp2(other_max[w] - base);
      softmax.row_sum[r] += scale * exchange[(w * kPerLane + kValues + kRows + r) * 32 + lane];
      const float* other = exchange + w * kPerLane * 32 + lane;
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        // Element (r, c) of the rowcol view is element idx of the fragment: the same in every warp.
        const int idx = acc_o_rc.layout()(r, c);
        acc_o_rc(r, c) += scale * other[32 * idx];
      }
    }
    softmax.row_max[r] = merged_max;
  }
  return true;
}

// One CTA: one query tile (of one head, or of one packed GQA group) and one split of its keys.
template <typename Traits, bool kSoftcap>
__device__ __forceinline__ void fwd_tile_sm80(const FwdParams& p, const FwdTile& tile, char* smem) {
  using namespace cute;
  using Element = typename Traits::Element;
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kNThreads = Traits::kNThreads;
  constexpr int kWarpKeys = Traits::kWarpKeys;
  constexpr bool kKeySplit = Traits::kKeySplitWarps > 1;
  using Mainloop = FwdMainloopSm80<Traits>;

  const int tid = threadIdx.x;  // loads: every thread of the CTA
  // MMAs, softmax and epilogue: this thread within its TiledMma, and the key slice it owns.
  const int mma_tid = tid % Traits::kMmaThreads;
  const int key_slice = tid / Traits::kMmaThreads;
  const SeqlenInfo seq(p, tile.batch);
  const QueryRows rows(p, tile.head, seq.seqlen_q);
  const QueryTile<kBlockM> query_tile(p, tile, rows);
  if (query_tile.past_end) return;
  const int m0 = query_tile.m0;
  const int kv_head = query_tile.kv_head;
  const int first_query = query_tile.first_query;
  const int last_query = query_tile.last_query;

  constexpr int kStages = Traits::kKvStages;
  static_assert(kStages == 1 || kStages == 2, "the paged row table has two buffers (prologue below)");
  Element* smem_q = reinterpret_cast<Element*>(smem);
  Element* smem_k = smem_q + Traits::kSmemQElems;             // K buffers 0 .. kStages - 1
  Element* smem_v = smem_k + kStages * Traits::kSmemKVElems;  // then the V buffers
  Tensor sQ = make_tensor(make_smem_ptr(smem_q), typename Traits::SmemLayoutQ{});
  // K / V buffer `stage` (stage_of below: key tiles take the pairs in turn).
  auto k_buffer = [&](int stage) {
    return make_tensor(make_smem_ptr(smem_k + stage * Traits::kSmemKVElems), typename Traits::SmemLayoutKV{});
  };
  auto v_buffer = [&](int stage) {
    return make_tensor(make_smem_ptr(smem_v + stage * Traits::kSmemKVElems), typename Traits::SmemLayoutKV{});
  };

  typename Traits::TiledMma tiled_mma;
  auto thr_mma = tiled_mma.get_thread_slice(mma_tid);
  Tensor acc_o = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kHeadDim>>{});
  clear(acc_o);
  Tensor acc_o_rc = rowcol_view(acc_o);
  constexpr int kRows = decltype(size<0>(acc_o_rc))::value;
  OnlineSoftmax<kRows> softmax;

  const KeyBlockRange range = key_block_range_for_queries<kBlockN>(p, first_query, last_query, seq.seqlen_q,
                                                                   seq.seqlen_k, tile.split, p.num_splits);
  if (!range.empty()) {
    // Threads 0 .. kLoadThreads - 1 load Q, K and V (all of them but in the d = 96 decode tile,
    // tile_shape.h fwd_load_threads_sm80); every thread fills the paged row table.
    constexpr int kLoadThreads = Traits::kLoadThreads;
    const bool loads = kLoadThreads == kNThreads || tid < kLoadThreads;
    using Loader = KeyTileLoader<kBlockN, kHeadDim, kLoadThreads, Element, Traits::kKvLoad>;
    constexpr bool kMayPage = Traits::kKvLoad != KvLoad::kStrided;
    // The shared row table (fill_paged_rows) where K and V can share it; the paged-only loader is
    // picked only for such calls (kv_layout_fits), the general one gathers the others row by row.
    int64_t* paged_rows = kMayPage && (Traits::kKvLoad == KvLoad::kPaged || paged_offsets_shared(p.k, p.v))
                              ? reinterpret_cast<int64_t*>(smem_v + kStages * Traits::kSmemKVElems)
                              : nullptr;
    const bool paged = seq.pages != nullptr && paged_rows != nullptr;
    const Loader k_loader(p.k, seq, kv_head, p.head_dim, tid, paged_rows);
    const Loader v_loader(p.v, seq, kv_head, p.head_dim, tid, paged_rows);
    auto fill_rows = [&](int n_block) { fill_paged_rows<kBlockN, kNThreads, Element>(paged_rows, seq, p.k, n_block * kBlockN, tid); };
    auto stage_of = [&](int n_block) { return kStages == 1 ? 0 : (range.end - 1 - n_block) % kStages; };
    auto load_k = [&](int n_block) {
      Tensor sK = k_buffer(stage_of(n_block));
      if (loads) k_loader.load(sK, seq, kv_head, p.head_dim, n_block * kBlockN, tid);
    };
    auto load_v = [&](int n_block) {
      Tensor sV = v_buffer(stage_of(n_block));
      if (loads) v_loader.load(sV, seq, kv_head, p.head_dim, n_block * kBlockN, tid);
    };

    if (loads) load_query_tile<kBlockM, kHeadDim, kLoadThreads, Element>(sQ, p, seq, rows, m0, tid);
    // Paged K/V: the row table of key tile n goes into buffer n % 2 before the barrier that precedes
    // its first load. One pair: tile n's table is written in the visit of n + 1 (before load_k(n)),
    // and buffer n % 2 was last read by tile n + 2's loads, issued before that visit's barrier. Two
    // pairs: written in the visit of n + 2 (the loads of n are issued after the barrier of n + 1),
    // and tile n + 2's loads were issued after the barrier of n + 3. So the first visit needs the
    // tables of its tile and of the next tile's loads that it issues.
    if (paged) {
      fill_rows(range.end - 1);
      if (kStages == 2 && range.end - 2 >= range.begin) fill_rows(range.end - 2);
      __syncthreads();
    }
    load_k(range.end - 1);
    if constexpr (kStages == 2) load_v(range.end - 1);
    cp_async_fence();

    const LogitRule rule(p, tile.batch, rows.first_head, seq.seqlen_q, seq.seqlen_k);
    const WindowMask mask(p, seq.seqlen_q, seq.seqlen_k);
    const uint32_t batch_head = static_cast<uint32_t>(tile.batch * p.h_q + rows.first_head);
    Tensor coords_s = thr_mma.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kWarpKeys>>{}));
    Tensor coords_s_rc = rowcol_view(coords_s);

    // A warp owns the 16-row MMA fragments starting at rows 16 w, 16 w + 16 kNWarps, ...; when even
    // its first row lies past the sequence (decode: a packed tile holds G rows of 128) it skips the
    // MMAs and the softmax, and only loads and synchronises with the CTA. The test selects one of
    // two loops (below), not a branch inside one: ptxas if-converted the in-loop test into
    // predicated MMAs plus 32 register clears per tile.
    const bool warp_has_rows = m0 + 16 * (mma_tid / 32) < rows.rows;

    // One key tile. Key tiles are visited from last to first, so the ones that need the exact rule
    // (sequence end, causal diagonal) come first.
    // rule: 0 interior tile (scale only), 1 exact tile (mask), 2 exact tile with ALiBi.
    auto visit = [&](int n_block, auto rule_kind, auto busy) __attribute__((always_inline)) {
      constexpr bool kExact = decltype(rule_kind)::value >= 1;
      constexpr bool kAlibi = decltype(rule_kind)::value == 2;
      constexpr bool kBusy = decltype(busy)::value;
      const int n0 = n_block * kBlockN + key_slice * kWarpKeys;  // first key of this thread's slice
      // This MMA group's keys of the K / V tile (all of them unless the warps split the keys). A
      // slice starts a multiple of 16 rows in, so the 8-row swizzle pattern is unchanged.
      const int stage = stage_of(n_block);
      Tensor sK_slice = local_tile(k_buffer(stage), Shape<Int<kWarpKeys>, Int<kHeadDim>>{}, make_coord(key_slice, 0));
      Element* v_data = smem_v + stage * Traits::kSmemKVElems;
      Tensor sVt_slice = local_tile(make_tensor(make_smem_ptr(v_data), typename Traits::SmemLayoutVt{}),
                                    Shape<Int<kHeadDim>, Int<kWarpKeys>>{}, make_coord(0, key_slice));
      Tensor sVt_no_swizzle_slice =
          local_tile(make_tensor(make_smem_ptr(v_data), typename Traits::SmemLayoutVtNoSwizzle{}),
                     Shape<Int<kHeadDim>, Int<kWarpKeys>>{}, make_coord(0, key_slice));

      cp_async_wait<0>();
      if constexpr (kStages == 1) {
        __syncthreads();  // K (and Q) landed; every warp finished the previous P V, so V is free
        load_v(n_block);
        cp_async_fence();
        if (paged && n_block > range.begin) fill_rows(n_block - 1);  // read by load_k(n_block - 1) below
      } else {
        // K and V (and Q) landed; every warp finished the previous tile, so its pair is free for the
        // next tile's K and V, which stream in while this one computes.
        __syncthreads();
        if (n_block > range.begin) {
          load_k(n_block - 1);
          load_v(n_block - 1);
          cp_async_fence();
        }
        if (paged && n_block - 1 > range.begin) fill_rows(n_block - 2);  // loaded in the next visit
      }

      Tensor acc_s = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kWarpKeys>>{});
      if constexpr (kBusy) Mainloop::gemm_qk(acc_s, sQ, sK_slice, mma_tid);

      if constexpr (kStages == 1) {
        cp_async_wait<0>();
        __syncthreads();  // V landed; every warp finished reading K
        if (n_block > range.begin) {
          load_k(n_block - 1);
          cp_async_fence();
        }
      }
      if constexpr (!kBusy) return;

      Tensor acc_s_rc = rowcol_view(acc_s);
      if constexpr (!kRawScores<kSoftcap, kExact>) {
        // Query index of each of this thread's rows: only exact tiles need it, and computed here
        // it holds no registers across the loop.
        int row_query[kRows] = {};
        if constexpr (kExact) {
#pragma unroll
          for (int r = 0; r < kRows; ++r) row_query[r] = rows.query(m0 + get<0>(coords_s_rc(r, 0)));
        }
        apply_logit_rule<kSoftcap, kExact, kAlibi>(acc_s_rc, coords_s_rc, rule, mask, row_query, n0);
      }
      softmax.step(acc_s_rc, acc_o_rc, kRawScores<kSoftcap, kExact> ? rule.scale_log2 : 1.f);
      if constexpr (Traits::kHasDropout) apply_dropout(acc_s_rc, coords_s_rc, p.dropout, batch_head, m0, n0);

      Tensor rP = make_tensor_like<Element>(acc_s);
#pragma unroll
      for (int e = 0; e < size(acc_s); ++e) rP(e) = Element(acc_s(e));
      Mainloop::gemm_pv(acc_o, rP, sVt_slice, sVt_no_swizzle_slice, mma_tid);
    };

    if (warp_has_rows) {
      for (int n_block = range.end - 1; n_block >= range.begin; --n_block) {
        const int n0 = n_block * kBlockN;
        if (rule.has_alibi) {
          visit(n_block, Int<2>{}, true_type{});
        } else if (!mask.all_visible(first_query, last_query + 1, n0, n0 + kBlockN)) {
          visit(n_block, Int<1>{}, true_type{});
        } else {
          visit(n_block, Int<0>{}, true_type{});
        }
      }
    } else {
      for (int n_block = range.end - 1; n_block >= range.begin; --n_block) visit(n_block, Int<0>{}, false_type{});
    }
  }

  if constexpr (kKeySplit) {
    if (!merge_key_split_warps<Traits>(softmax, acc_o, reinterpret_cast<char*>(smem_k), tid)) return;
  }
  finish_query_tile<Traits>(p, seq, rows, tile, softmax, acc_o, Traits::kHasDropout ? p.dropout_rescale : 1.f, sQ,
                            mma_tid);
}

template <typename Traits>
__global__ void __launch_bounds__(Traits::kNThreads, Traits::kMinCtasPerSm) fwd_kernel_sm80(const __grid_constant__ FwdParams p) {
  extern __shared__ __align__(128) char smem[];
  // The split-KV combine after this grid may be scheduled once every CTA has started; it still
  // waits for this grid to finish before it reads anything (dependent_launch.cuh).
  allow_dependent_launch();
  const FwdTile tile = StaticTileScheduler::tile(p, static_cast<int>(blockIdx.x));
  with_softcap_policy(p.softcap, [&](auto softcap) __attribute__((always_inline)) { fwd_tile_sm80<Traits, decltype(softcap)::value>(p, tile, smem); });
}

}  // namespace kernels
}  // namespace flashplus
