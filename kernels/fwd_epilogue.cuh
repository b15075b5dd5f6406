// fwd_epilogue.cuh — writes one query tile's O and LSE.
//
// Final output: O is converted to the element type, staged through shared memory (the Q tile,
// no longer read) and written as coalesced 16-byte rows with row / head-dim predicates.
// Split-KV partial: fp32 O straight from registers into the dense workspace (head dim padded to
// kHeadDim, so no feature predicate), plus the split's LSE; combine_kernel.cuh merges them.
// LSE: one lane of each quad writes the row's value. Rows map to (query, head) through QueryRows,
// so packed GQA tiles write each row to its own head.
#pragma once

#include <cute/tensor.hpp>

#include "fragment_layout.cuh"
#include "fwd_params.h"
#include "query_rows.cuh"
#include "seqlen_info.cuh"
#include "tile_io_sm80.cuh"

namespace flashplus {
namespace kernels {

template <typename Traits>
struct FwdEpilogue {
  using Element = typename Traits::Element;
  static constexpr int kBlockM = Traits::kBlockM;
  static constexpr int kHeadDim = Traits::kHeadDim;
  // The threads of one TiledMma: all of the CTA's, except in the decode tile, whose warps split
  // the keys and whose merged output warp 0 alone stores (fwd_kernel_sm80.cuh).
  static constexpr int kNThreads = Traits::kMmaThreads;

  __device__ __forceinline__ static void sync() {
    if constexpr (kNThreads == 32) {
      __syncwarp();
    } else {
      __syncthreads();
    }
  }

  // acc_o: normalised (MMA, MMA_M, MMA_N) fp32 fragment; lse: this thread's rows (rowcol order).
  // rows: the (query, head) of each tile row (query_rows.cuh).
  template <typename AccO, typename SmemO, int kRows>
  __device__ __forceinline__ static void store(const FwdParams& p, const SeqlenInfo& seq, const QueryRows& rows,
                                               int batch, int m_block, int split, AccO& acc_o,
                                               const float (&lse)[kRows], SmemO& sO, int tid) {
    using namespace cute;
    const int m0 = m_block * kBlockM;
    const int valid_rows = min(kBlockM, rows.rows - m0);
    typename Traits::TiledMma tiled_mma;
    auto thr_mma = tiled_mma.get_thread_slice(tid);
    Tensor coords = thr_mma.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kHeadDim>>{}));
    Tensor coords_rc = rowcol_view(coords);
    Tensor acc_o_rc = rowcol_view(acc_o);
    static_assert(decltype(size<0>(coords_rc))::value == kRows);
    constexpr int kCols = decltype(size<1>(coords_rc))::value;

    if (p.num_splits > 1) {
      // Workspace layout: see FwdParams (dense (b, max_s_q) rows, kHeadDim features).
      const int64_t rows_per_split = static_cast<int64_t>(p.batch) * p.max_seqlen_q;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int row = get<0>(coords_rc(r, 0));
        if (row >= valid_rows) continue;
        const int query = rows.query(m0 + row);
        const int head = rows.head(m0 + row);
        if ((tid % 4) == 0) {
          p.lse_partial[split * rows_per_split * p.h_q + (static_cast<int64_t>(batch) * p.h_q + head) * p.max_seqlen_q +
                        query] = lse[r];
        }
        float* out_row = p.out_partial +
                         ((split * rows_per_split + static_cast<int64_t>(batch) * p.max_seqlen_q + query) * p.h_q + head) *
                             kHeadDim;
#pragma unroll
        for (int c = 0; c < kCols; ++c) out_row[get<1>(coords_rc(r, c))] = acc_o_rc(r, c);
      }
      return;
    }

    if (p.lse.data && (tid % 4) == 0) {
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int row = get<0>(coords_rc(r, 0));
        if (row < valid_rows)
          p.lse.data[seq.stats_offset(p.lse, rows.query(m0 + row), rows.head(m0 + row))] = lse[r];
      }
    }

    Tensor rO = make_tensor_like<Element>(acc_o);
#pragma unroll
    for (int i = 0; i < size(acc_o); ++i) rO(i) = Element(acc_o(i));
    sync();  // every warp has finished reading the Q tile that sO reuses
    Tensor tOsO = thr_mma.partition_C(sO);
    copy(rO, tOsO);
    sync();

    Element* out = static_cast<Element*>(p.out.data);
    if (rows.group == 1) {  // one head: a fixed row stride, no per-row (query, head) lookup
      store_strided_rows<kBlockM, kHeadDim, kNThreads>(sO, out + seq.query_offset(p.out, m0, rows.first_head),
                                                       p.out.row_stride, valid_rows, p.head_dim, p.out.aligned16, tid);
    } else {
      store_rows<kBlockM, kHeadDim, kNThreads>(
          sO, out, [&](int r) { return seq.query_offset(p.out, rows.query(m0 + r), rows.head(m0 + r)); }, valid_rows,
          p.head_dim, p.out.aligned16, tid);
    }
  }
};

}  // namespace kernels
}  // namespace flashplus
