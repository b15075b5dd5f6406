// seqlen_info.cuh — where one sequence's queries and keys live, resolved once per CTA.
//
// Dense, varlen, seqused_k, leftpad_k, cache_batch_idx and paged K/V all reduce to: s_q query rows
// starting at global row q_row0, and s_k keys whose logical index j (0-based, after leftpad) maps to
// a physical row key_row0 + j of either a dense batch entry or a page of the block table. The CPU
// backend resolves sequences by the same rules (problem.h); the two are tested against each other.
//
// Index contents are checked here, where they are read (CUDA validation cannot read them without a
// device synchronisation, which would also break CUDA-graph capture). A sequence with a bad index
// records FLASHPLUS_INDEX_ERROR_* bits (flashplus_take_index_errors reads them) and is treated as
// having no keys — and no queries when its query rows themselves are unknown — so nothing is read
// or written out of bounds; kernels write NaN where its outputs are known. Block-table entries are
// checked per tile by page().
#pragma once

#include <cstdint>

#include "flashplus/flashplus.h"
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
  uint32_t index_errors = 0;  // FLASHPLUS_INDEX_ERROR_* bits of this sequence's bad indices
  uint32_t* error_word = nullptr;  // where they are reported (FwdParams::index_errors)
  int64_t num_pages = 0;

  // error_word and num_pages are plain copies of kernel parameters, so ptxas can re-read them
  // from the constant bank instead of keeping registers for them across the main loop.
  __device__ __forceinline__ SeqlenInfo(const FwdParams& p, int b) : error_word(p.index_errors), num_pages(p.kv_entries) {
    const bool varlen = p.cu_seqlens_q != nullptr;
    uint32_t bad = 0;
    if (varlen) {
      const int64_t first = p.cu_seqlens_q[b], last = p.cu_seqlens_q[b + 1];
      if (first < 0 || last < first || last > p.q_rows_total) {
        bad |= FLASHPLUS_INDEX_ERROR_CU_SEQLENS_Q;
      } else {
        if (last - first > p.max_seqlen_q) bad |= FLASHPLUS_INDEX_ERROR_MAX_SEQLEN;
        q_row0 = first;
        seqlen_q = static_cast<int>(last - first);
      }
    } else {
      q_batch = b;
      seqlen_q = p.max_seqlen_q;
    }
    int64_t length = p.max_seqlen_k;
    int64_t base = 0;
    if (varlen) {
      const int64_t first = p.cu_seqlens_k[b], last = p.cu_seqlens_k[b + 1];
      length = last - first;
      if (first < 0 || last < first || (p.block_table ? length > p.kv_capacity : last > p.kv_entries))
        bad |= FLASHPLUS_INDEX_ERROR_CU_SEQLENS_K;
      if (!p.block_table) base = first;
    } else {
      kv_batch = p.cache_batch_idx ? p.cache_batch_idx[b] : b;
      if (kv_batch < 0 || kv_batch >= p.kv_entries) bad |= FLASHPLUS_INDEX_ERROR_CACHE_BATCH_IDX;
    }
    if (p.block_table) {
      if (!varlen) length = static_cast<int64_t>(p.max_blocks_per_seq) * p.page_size;
      pages = p.block_table + b * p.block_table_batch_stride;
      page_size = p.page_size;
      if ((page_size & (page_size - 1)) == 0) page_shift = __ffs(page_size) - 1;
    }
    const int64_t end = p.seqused_k ? static_cast<int64_t>(p.seqused_k[b]) + p.seqused_k_extra : length;
    if (p.seqused_k && (p.seqused_k[b] < 0 || end > length)) bad |= FLASHPLUS_INDEX_ERROR_SEQUSED_K;
    const int64_t start = p.leftpad_k ? p.leftpad_k[b] : 0;
    if (start < 0 || start > end) bad |= FLASHPLUS_INDEX_ERROR_LEFTPAD_K;
    if (varlen && end - start > p.max_seqlen_k) bad |= FLASHPLUS_INDEX_ERROR_MAX_SEQLEN;
    if (bad) {
      // Nothing of this sequence is read; its query rows stay addressable when they are known.
      report(bad);
      if (bad & FLASHPLUS_INDEX_ERROR_CU_SEQLENS_Q) seqlen_q = 0;
      seqlen_k = 0;
      kv_batch = 0;
      pages = nullptr;
      return;
    }
    seqlen_k = static_cast<int>(end - start);
    key_row0 = base + start;
  }

  __device__ __forceinline__ void report(uint32_t bits) {
    index_errors |= bits;
    if (error_word) atomicOr(error_word, bits);
  }

  // Page of block-table slot `slot`, or -1 (reported) when the entry is outside [0, num_pages).
  __device__ __forceinline__ int page(int slot) const {
    const int entry = pages[slot];
    if (static_cast<uint64_t>(static_cast<uint32_t>(entry)) < static_cast<uint64_t>(num_pages)) return entry;
    if (error_word) atomicOr(error_word, FLASHPLUS_INDEX_ERROR_BLOCK_TABLE);
    return -1;
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

  // key_offset, or -1 where key j's block-table entry is bad (page() reports it): the forward's
  // K/V loaders turn such rows into NaN keys, so every output that could see them is NaN.
  __device__ __forceinline__ int64_t key_offset_or_bad(const RowsAddr& t, int j, int h) const {
    if (pages) {
      const int page = this->page(page_of(j));
      return page < 0 ? int64_t{-1} : offset_in_page(t, page, j, h);
    }
    return key_offset(t, j, h);
  }

  // Element offset of key j (within the sequence), K/V head h, feature 0.
  __device__ __forceinline__ int64_t key_offset(const RowsAddr& t, int j, int h) const {
    // A bad page entry reads page 0 instead: reported, and the caller's result is then undefined.
    if (pages) return offset_in_page(t, max(this->page(page_of(j)), 0), j, h);
    return kv_batch * t.batch_stride + (key_row0 + j) * t.row_stride + h * t.head_stride;
  }

  // Key j's element offset in physical page `page` (paged K/V).
  __device__ __forceinline__ int64_t offset_in_page(const RowsAddr& t, int64_t page, int j, int h) const {
    return page * t.batch_stride + static_cast<int64_t>(row_in_page(j)) * t.row_stride + h * t.head_stride;
  }
};

}  // namespace kernels
}  // namespace flashplus
