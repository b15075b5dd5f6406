// cpu_sequences.h — where sequence i's queries and keys live (dense, varlen, paged, leftpad,
// seqused, cache_batch_idx), resolved once per work item so the inner loops see plain row offsets.
#pragma once

#include <cstdint>

#include "problem.h"

namespace flashplus {
namespace cpu {

struct SeqExtent {
  int64_t q_row0 = 0;    // row of query 0 (varlen: cu_seqlens_q[i]; dense: 0)
  int64_t q_batch = 0;   // batch index for q-shaped tensors (0 for varlen)
  int32_t s_q = 0;
  int32_t s_k = 0;       // visible key rows, after leftpad and seqused
  int64_t k_row0 = 0;    // logical row of key 0 (varlen: cu_seqlens_k[i] + leftpad, else leftpad)
  int64_t kv_batch = 0;  // batch entry of K/V (cache_batch_idx or i; 0 for varlen)
};

inline SeqExtent resolve_sequence(const SeqLayout& s, int64_t i) {
  SeqExtent e;
  const bool varlen = s.cu_seqlens_q != nullptr;
  if (varlen) {
    e.q_row0 = s.cu_seqlens_q[i];
    e.s_q = s.cu_seqlens_q[i + 1] - s.cu_seqlens_q[i];
  } else {
    e.q_batch = i;
    e.s_q = s.max_seqlen_q;
  }
  int64_t length = s.max_seqlen_k;  // dense: s_k, or the paged capacity
  int64_t base = 0;
  if (varlen) {
    length = s.cu_seqlens_k[i + 1] - s.cu_seqlens_k[i];
    if (!s.block_table) base = s.cu_seqlens_k[i];
  } else {
    e.kv_batch = s.cache_batch_idx ? s.cache_batch_idx[i] : i;
  }
  if (s.block_table && !varlen) length = static_cast<int64_t>(s.max_blocks_per_seq) * s.page_size;
  const int64_t end = s.seqused_k ? static_cast<int64_t>(s.seqused_k[i]) + s.seqused_k_extra : length;
  const int64_t start = s.leftpad_k ? s.leftpad_k[i] : 0;
  e.s_k = static_cast<int32_t>(end - start);
  e.k_row0 = base + start;
  return e;
}

// Element offset of (key j, head h, feature 0) of sequence i in a K- or V-shaped view.
inline int64_t key_offset(const SeqLayout& s, const RowsView& kv, const SeqExtent& e, int64_t i,
                          int64_t j, int64_t h) {
  const int64_t logical = e.k_row0 + j;
  if (s.block_table) {
    const int64_t page = s.block_table[i * s.block_table_batch_stride + logical / s.page_size];
    return page * kv.batch_stride + (logical % s.page_size) * kv.row_stride + h * kv.head_stride;
  }
  return e.kv_batch * kv.batch_stride + logical * kv.row_stride + h * kv.head_stride;
}

// Element offset of (query r, head h, feature 0) of sequence i in a q-shaped view.
inline int64_t query_offset(const RowsView& view, const SeqExtent& e, int64_t r, int64_t h) {
  return e.q_batch * view.batch_stride + (e.q_row0 + r) * view.row_stride + h * view.head_stride;
}

inline int64_t stats_offset(const RowStatsView& view, const SeqExtent& e, int64_t r, int64_t h) {
  return e.q_batch * view.batch_stride + h * view.head_stride + (e.q_row0 + r) * view.row_stride;
}

}  // namespace cpu
}  // namespace flashplus
