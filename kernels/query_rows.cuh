// query_rows.cuh — which (query index, query head) each row of a forward tile holds.
//
// Unpacked: tile row r of query tile m is query m * kBlockM + r of the CTA's one query head.
// Packed GQA (FwdParams::pack_gqa): the CTA owns one K/V head, and its M dimension runs over the
// (query, head-in-group) pairs of that head's group: packed row R is query R / G of head
// kv_head * G + R % G. Decode (s_q = 1) with G query heads per K/V head then fills G rows of one
// tile and reads each K/V tile once for the whole group instead of once per query head. Rows that
// share a query index are adjacent, so the causal / window mask stays monotone in R and the
// interior-tile test (mask.cuh) still works on the query range of the tile.
#pragma once

#include "fwd_params.h"

namespace flashplus {
namespace kernels {

struct QueryRows {
  int group = 1;       // query heads per packed row block: G when packed, else 1
  int first_head = 0;  // query head of packed row 0 (kv_head * G when packed)
  int rows = 0;        // packed rows of this sequence: s_q * group

  __device__ __forceinline__ QueryRows(const FwdParams& p, int cta_head, int seqlen_q) {
    if (p.pack_gqa) {
      group = p.group_size;
      first_head = cta_head * p.group_size;
    } else {
      first_head = cta_head;
    }
    rows = seqlen_q * group;
  }

  __device__ __forceinline__ int query(int row) const { return group == 1 ? row : row / group; }
  __device__ __forceinline__ int head(int row) const { return group == 1 ? first_head : first_head + row % group; }
};

}  // namespace kernels
}  // namespace flashplus
