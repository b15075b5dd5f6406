// fwd_query_tile.cuh — the query side of one forward CTA, shared by the sm80 and sm90 kernels:
// which rows its tile holds (QueryTile), loading its Q tile, and finishing it (normalised O, NaN
// for a sequence with a bad index, the epilogue's stores).
#pragma once

#include <cmath>

#include <cute/tensor.hpp>

#include "fwd_epilogue.cuh"
#include "fwd_params.h"
#include "query_rows.cuh"
#include "seqlen_info.cuh"
#include "tile_io_sm80.cuh"
#include "tile_scheduler.cuh"

namespace flashplus {
namespace kernels {

// Rows [m0, m0 + kBlockM) of the (packed) rows of one sequence and head or GQA group.
template <int kBlockM>
struct QueryTile {
  int m0 = 0;
  int kv_head = 0;
  int first_query = 0;  // query index (within the sequence) of the tile's first and last valid row
  int last_query = 0;
  bool past_end = false;  // varlen: this sequence is shorter than the longest; nothing to do

  __device__ __forceinline__ QueryTile(const FwdParams& p, const FwdTile& tile, const QueryRows& rows)
      : m0(tile.m_block * kBlockM) {
    past_end = m0 >= rows.rows;
    if (past_end) return;
    kv_head = p.pack_gqa ? tile.head : tile.head / p.group_size;
    first_query = rows.query(m0);
    last_query = rows.query(min(m0 + kBlockM, rows.rows) - 1);
  }
};

// Fills the shared Q tile sQ (any layout keeping 8-element chunks contiguous) with the tile's query
// rows; rows past the sequence and features past head_dim become zero.
template <int kBlockM, int kHeadDim, int kNThreads, typename Element, typename SmemQ>
__device__ __forceinline__ void load_query_tile(SmemQ& sQ, const FwdParams& p, const SeqlenInfo& seq,
                                                const QueryRows& rows, int m0, int tid) {
  const Element* q = static_cast<const Element*>(p.q.data);
  auto q_row = [&](int r) { return seq.query_offset(p.q, rows.query(m0 + r), rows.head(m0 + r)); };
  if (rows.group == 1) {  // one head: query rows a fixed stride apart
    load_strided_rows<kBlockM, kHeadDim, kNThreads>(sQ, q + q_row(0), p.q.row_stride, rows.rows - m0, p.head_dim,
                                                    p.q.aligned16, tid);
  } else {
    load_rows<kBlockM, kHeadDim, kNThreads>(sQ, q, q_row, rows.rows - m0, p.head_dim, p.q.aligned16, tid);
  }
}

// Normalises O (times out_scale) and stores O and LSE (fwd_epilogue.cuh), staging O in sO. A
// sequence with a bad index (seqlen_info.cuh) gets NaN rows, not the "no keys" result.
template <typename Traits, typename Softmax, typename AccO, typename SmemO>
__device__ __forceinline__ void finish_query_tile(const FwdParams& p, const SeqlenInfo& seq, const QueryRows& rows,
                                                  const FwdTile& tile, Softmax& softmax, AccO& acc_o, float out_scale,
                                                  SmemO& sO, int tid) {
  using namespace cute;
  Tensor acc_o_rc = rowcol_view(acc_o);
  constexpr int kRows = decltype(size<0>(acc_o_rc))::value;
  float lse[kRows];
  softmax.finalize(acc_o_rc, out_scale, lse);
  if (seq.index_errors) {
#pragma unroll
    for (int e = 0; e < size(acc_o); ++e) acc_o(e) = NAN;
#pragma unroll
    for (int r = 0; r < kRows; ++r) lse[r] = NAN;
  }
  FwdEpilogue<Traits>::store(p, seq, rows, tile.batch, tile.m_block, tile.split, acc_o, lse, sO, tid);
}

}  // namespace kernels
}  // namespace flashplus
