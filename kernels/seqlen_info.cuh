// seqlen_info.cuh — where one sequence's queries and keys live, resolved once per CTA.
//
// Dense, varlen, seqused_k, leftpad_k, cache_batch_idx and paged K/V all reduce to: s_q query rows
// starting at global row q_row0, and s_k keys whose logical index j (0-based, after leftpad) maps to
// a physical row key_row0 + j of either a dense batch entry or a page of the block table. The CPU
// backend resolves sequences by the same rules (problem.h); the two are tested against each other.
#pragma once

#include <cstdint>

#include "fwd_params.h"

namespace flashplus {
namespace kernels {

struct SeqlenInfo {
  int seqlen_q = 0;
  int seqlen_k = 0;
  int64_t q_row0 = 0;    // global row of query 0: cu_seqlens_q[b] for varlen, else 0
  int64_t q_batch = 0;   // batch index for q/out/lse: b for dense, 0 for varlen
  int64_t kv_batch = 0;  // dense K/V batch entry: cache_batch_idx[b] or b; 0 for varlen
  int64_t key_row0 = 0;  // physical row of key 0 (leftpad included; varlen adds cu_seqlens_k[b])
  const int32_t* pages = nullptr;  // this sequence's block-table row when paged
  int page_size = 0;
  int page_shift = -1;  // log2(page_size) when it is a power of two (16, 256, ...): no division

  __device__ __forceinline__ SeqlenInfo(const FwdParams& p, int b) {
    const bool varlen = p.cu_seqlens_q != nullptr;
    if (varlen) {
      q_row0 = p.cu_seqlens_q[b];
      seqlen_q = p.cu_seqlens_q[b + 1] - p.cu_seqlens_q[b];
    } else {
      q_batch = b;
      seqlen_q = p.max_seqlen_q;
    }
    int64_t length = p.max_seqlen_k;
    int64_t base = 0;
    if (varlen) {
      length = p.cu_seqlens_k[b + 1] - p.cu_seqlens_k[b];
      if (!p.block_table) base = p.cu_seqlens_k[b];
    } else {
      kv_batch = p.cache_batch_idx ? p.cache_batch_idx[b] : b;
    }
    if (p.block_table) {
      if (!varlen) length = static_cast<int64_t>(p.max_blocks_per_seq) * p.page_size;
      pages = p.block_table + b * p.block_table_batch_stride;
      page_size = p.page_size;
      if ((page_size & (page_size - 1)) == 0) page_shift = __ffs(page_size) - 1;
    }
    const int64_t end = p.seqused_k ? static_cast<int64_t>(p.seqused_k[b]) + p.seqused_k_extra : length;
    const int64_t start = p.leftpad_k ? p.leftpad_k[b] : 0;
    seqlen_k = static_cast<int>(end - start);
    key_row0 = base + start;
  }

  // Element offset of query row i (within the sequence), head h, feature 0.
  __device__ __forceinline__ int64_t query_offset(const RowsAddr& t, int i, int h) const {
    return q_batch * t.batch_stride + (q_row0 + i) * t.row_stride + h * t.head_stride;
  }

  __device__ __forceinline__ int64_t stats_offset(const StatsAddr& t, int i, int h) const {
    return q_batch * t.batch_stride + h * t.head_stride + (q_row0 + i) * t.row_stride;
  }

  // Paged: block-table slot and row within the page of key j. Paged rows are counted from the
  // sequence start (no cu_seqlens base), so they fit 32 bits; a 64-bit division would be a
  // function call in the hot loop.
  __device__ __forceinline__ int page_of(int j) const {
    const int row = static_cast<int>(key_row0) + j;
    return page_shift >= 0 ? row >> page_shift : row / page_size;
  }
  __device__ __forceinline__ int row_in_page(int j) const {
    const int row = static_cast<int>(key_row0) + j;
    return page_shift >= 0 ? row & (page_size - 1) : row % page_size;
  }

  // Element offset of key j (within the sequence), K/V head h, feature 0.
  __device__ __forceinline__ int64_t key_offset(const RowsAddr& t, int j, int h) const {
    if (pages) {
      const int64_t page = pages[page_of(j)];
      return page * t.batch_stride + static_cast<int64_t>(row_in_page(j)) * t.row_stride + h * t.head_stride;
    }
    return kv_batch * t.batch_stride + (key_row0 + j) * t.row_stride + h * t.head_stride;
  }
};

}  // namespace kernels
}  // namespace flashplus
