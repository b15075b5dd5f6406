// key_tile_loader_sm80.cuh — global -> shared loads of K / V tiles inside the main loops.
//
// tile_io_sm80.cuh's load_rows gathers every 16-byte chunk through a per-row offset function: one
// loader for dense, varlen and paged rows, but each chunk pays 64-bit index products and the
// paged branch, several hundred issued instructions per tile and thread, and the live index
// values were what ptxas spilled. Dense and varlen keys are a fixed stride apart, so here each
// thread keeps one pointer to its first chunk of key 0 and steps it by the row stride. Paged
// K/V (all page numbers of a tile read first, then all copies), tensors without 16-byte alignment
// and head dims whose rows do not split evenly over the threads keep a general gather.
//
// kStridedOnly (a variant policy, variants.py "_strided"): the loader has only the strided path.
// The gather and paged paths cost nothing at run time when not taken, but ptxas allocates
// registers for the whole loop body: with them the dense d = 128 forward (sm_90) spilled 4200
// bytes of reloads (static), without them 1960. The host picks these variants only for K/V that
// satisfy kv_rows_strided() (launch.h), the same test the general loader makes per CTA.
#pragma once

#include <cstdint>

#include "fwd_params.h"
#include "seqlen_info.cuh"
#include "tile_io_sm80.cuh"
#include "tile_shape.h"

namespace flashplus {
namespace kernels {

// Holds only a pointer and a flag: the tensor description stays a reference into the kernel
// parameters (constant bank), since every register kept live across the main loop is one the
// MMA accumulators cannot have.
template <int kRows, int kHeadDim, int kNThreads, typename Element, bool kStridedOnly = false>
class KeyTileLoader {
  static constexpr int kChunksPerRow = kHeadDim / 8;
  // A thread keeps one column when the threads cover whole rows per pass (not for d = 96 / 192).
  static constexpr bool kFixedColumn = fixed_column_loads(kHeadDim, kNThreads);
  static_assert(kFixedColumn || !kStridedOnly, "strided-only loaders need whole rows per pass");
  static constexpr int kRowStep = kFixedColumn ? kNThreads / kChunksPerRow : 1;
  static constexpr int kChunksPerThread = kRows * kChunksPerRow / kNThreads;

 public:
  __device__ __forceinline__ KeyTileLoader(const RowsAddr& t, const SeqlenInfo& seq, int kv_head, int head_dim,
                                           int tid)
      : t_(t) {
    const bool fixed_column = kFixedColumn && t.aligned16 && head_dim % 8 == 0;
    strided_ = kStridedOnly || (fixed_column && seq.pages == nullptr);
    paged_ = !kStridedOnly && fixed_column && seq.pages != nullptr;
    if (strided_) {
      thread_src_ = static_cast<const Element*>(t.data) + seq.key_offset(t, tid / kChunksPerRow, kv_head) +
                    (tid % kChunksPerRow) * 8;
    }
  }

  // Fills tile rows [0, kRows) with keys n0 .. n0 + kRows - 1 of K/V head kv_head; rows past the
  // sequence and features past head_dim become zero (see load_rows).
  template <typename SmemTile>
  __device__ __forceinline__ void load(SmemTile& tile, const SeqlenInfo& seq, int kv_head, int head_dim, int n0,
                                       int tid) const {
    const int valid_rows = seq.seqlen_k - n0;
    if (kStridedOnly || strided_) {
      const int col = (tid % kChunksPerRow) * 8;
      copy_strided_chunks<kChunksPerThread, kRowStep>(tile, thread_src_ + static_cast<int64_t>(n0) * t_.row_stride,
                                                      static_cast<int64_t>(kRowStep) * t_.row_stride,
                                                      tid / kChunksPerRow, col, valid_rows, col < head_dim);
      return;
    }
    if constexpr (!kStridedOnly) load_gathered(tile, seq, kv_head, head_dim, n0, valid_rows, tid);
  }

 private:
  // Paged rows, and rows without 16-byte copies or whole rows per pass.
  template <typename SmemTile>
  __device__ __forceinline__ void load_gathered(SmemTile& tile, const SeqlenInfo& seq, int kv_head, int head_dim,
                                                int n0, int valid_rows, int tid) const {
    if (paged_) {
      // All block-table reads first, so that they are in flight together; each copy then waits
      // only for its own page number.
      const int first_row = tid / kChunksPerRow;
      const int col = (tid % kChunksPerRow) * 8;
      const bool column_inside = col < head_dim;
      int page[kChunksPerThread];
#pragma unroll
      for (int it = 0; it < kChunksPerThread; ++it) {
        const int row = first_row + it * kRowStep;
        page[it] = row < valid_rows ? seq.page(seq.page_of(n0 + row)) : 0;
      }
      const Element* head_base = static_cast<const Element*>(t_.data) + static_cast<int64_t>(kv_head) * t_.head_stride + col;
#pragma unroll
      for (int it = 0; it < kChunksPerThread; ++it) {
        const int row = first_row + it * kRowStep;
        Element* dst = &tile(row, col);
        if (row < valid_rows && column_inside && page[it] >= 0) {
          const int in_page = seq.row_in_page(n0 + row);
          cp_async_16(dst, head_base + page[it] * t_.batch_stride + static_cast<int64_t>(in_page) * t_.row_stride);
        } else if (page[it] < 0) {
          // A bad block-table entry (reported by page()): NaN keys, so the rows that see them are NaN.
          *reinterpret_cast<uint4*>(dst) = make_uint4(~0u, ~0u, ~0u, ~0u);
        } else {
          *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
        }
      }
    } else {
      load_rows<kRows, kHeadDim, kNThreads>(tile, static_cast<const Element*>(t_.data),
                                            [&](int r) { return seq.key_offset(t_, n0 + r, kv_head); }, valid_rows,
                                            head_dim, t_.aligned16, tid);
    }
  }

 private:
  const RowsAddr& t_;
  bool strided_ = false;  // dense / varlen rows: one pointer per thread, stepped by the row stride
  bool paged_ = false;    // paged rows: one block-table read per chunk, issued before the copies
  const Element* thread_src_ = nullptr;
};

}  // namespace kernels
}  // namespace flashplus
