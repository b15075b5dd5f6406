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
// kMode (KvLoad, tile_shape.h, a variant policy): which of the paths a loader has. The paths a
// call does not take cost nothing at run time, but ptxas allocates registers for the whole loop
// body and compiles every copy: with all three the dense d = 128 forward (sm_90) spilled 4200
// bytes of reloads (static), with the strided path only 1960; a one-warp decode tile with all
// three took ptxas 480 s. The host picks a specialised variant only for K/V that fit it
// (kv_layout_fits in cuda_backend.cu, the same tests the kAny loader makes per CTA).
#pragma once

#include <cstdint>

#include "fwd_params.h"
#include "seqlen_info.cuh"
#include "tile_io_sm80.cuh"
#include "tile_shape.h"

namespace flashplus {
namespace kernels {

// Paged K/V: (page, row in page) of each key row of a tile, computed once per row by
// fill_paged_rows before the tile's loads, into one of two buffers (tile parity) in shared memory.
// Each 16-byte copy then reads its row's entry (one shared load) instead of dividing the key index
// and reading the block table itself: the per-chunk lookups made the paged loop's code so large
// that a third of the warps' stall samples were instruction-cache misses (H200, b = 64, 8k
// context, page size 16: 1102 us against 247 us for contiguous K/V).
template <int kRows, int kNThreads>
__device__ __forceinline__ void fill_paged_rows(int2* table, const SeqlenInfo& seq, int n0, int tid) {
  int2* rows = table + ((n0 / kRows) & 1) * kRows;
#pragma unroll
  for (int i = 0; i < (kRows + kNThreads - 1) / kNThreads; ++i) {
    const int r = tid + i * kNThreads;
    if (r < kRows && n0 + r < seq.seqlen_k) rows[r] = make_int2(seq.page(seq.page_of(n0 + r)), seq.row_in_page(n0 + r));
  }
}

// Holds only a pointer and a flag: the tensor description stays a reference into the kernel
// parameters (constant bank), since every register kept live across the main loop is one the
// MMA accumulators cannot have.
template <int kRows, int kHeadDim, int kNThreads, typename Element, KvLoad kMode = KvLoad::kAny>
class KeyTileLoader {
  static constexpr int kChunksPerRow = kHeadDim / 8;
  // A thread keeps one column when the threads cover whole rows per pass (not for d = 96 / 192).
  static constexpr bool kFixedColumn = fixed_column_loads(kHeadDim, kNThreads);
  static_assert(kFixedColumn || kMode == KvLoad::kAny, "specialised loaders need whole rows per pass");
  static constexpr bool kMayStride = kMode != KvLoad::kPaged;
  static constexpr bool kMayPage = kMode != KvLoad::kStrided;
  static constexpr int kRowStep = kFixedColumn ? kNThreads / kChunksPerRow : 1;
  static constexpr int kChunksPerThread = kRows * kChunksPerRow / kNThreads;

 public:
  // paged_rows: the table fill_paged_rows writes (shared memory), or nullptr where K/V are never
  // paged (strided-only variants, the backward).
  __device__ __forceinline__ KeyTileLoader(const RowsAddr& t, const SeqlenInfo& seq, int kv_head, int head_dim,
                                           int tid, const int2* paged_rows = nullptr)
      : t_(t), paged_rows_(paged_rows) {
    const bool fixed_column = kFixedColumn && t.aligned16 && head_dim % 8 == 0;
    strided_ = kMode == KvLoad::kStrided || (kMode == KvLoad::kAny && fixed_column && seq.pages == nullptr);
    paged_ = kMode == KvLoad::kPaged ||
             (kMode == KvLoad::kAny && fixed_column && seq.pages != nullptr && paged_rows != nullptr);
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
    if (kMode == KvLoad::kStrided || (kMayStride && strided_)) {
      const int col = (tid % kChunksPerRow) * 8;
      copy_strided_chunks<kChunksPerThread, kRowStep>(tile, thread_src_ + static_cast<int64_t>(n0) * t_.row_stride,
                                                      static_cast<int64_t>(kRowStep) * t_.row_stride,
                                                      tid / kChunksPerRow, col, valid_rows, col < head_dim);
      return;
    }
    if constexpr (kMayPage) load_gathered(tile, seq, kv_head, head_dim, n0, valid_rows, tid);
  }

 private:
  // Paged rows, and (kAny) rows without 16-byte copies or whole rows per pass.
  template <typename SmemTile>
  __device__ __forceinline__ void load_gathered(SmemTile& tile, const SeqlenInfo& seq, int kv_head, int head_dim,
                                                int n0, int valid_rows, int tid) const {
    if (kMode == KvLoad::kPaged || paged_) {
      const int first_row = tid / kChunksPerRow;
      const int col = (tid % kChunksPerRow) * 8;
      const bool column_inside = col < head_dim;
      const int2* rows = paged_rows_ + ((n0 / kRows) & 1) * kRows;
      const Element* head_base = static_cast<const Element*>(t_.data) + static_cast<int64_t>(kv_head) * t_.head_stride + col;
#pragma unroll
      for (int it = 0; it < kChunksPerThread; ++it) {
        const int row = first_row + it * kRowStep;
        Element* dst = &tile(row, col);
        const int2 entry = row < valid_rows ? rows[row] : make_int2(0, 0);
        if (entry.x < 0) {
          // A bad block-table entry (reported by page()): NaN keys, so the rows that see them are NaN.
          *reinterpret_cast<uint4*>(dst) = make_uint4(~0u, ~0u, ~0u, ~0u);
        } else if (row < valid_rows && column_inside) {
          cp_async_16(dst, head_base + entry.x * t_.batch_stride + static_cast<int64_t>(entry.y) * t_.row_stride);
        } else {
          *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
        }
      }
    } else if constexpr (kMode == KvLoad::kAny) {
      load_rows<kRows, kHeadDim, kNThreads, true>(tile, static_cast<const Element*>(t_.data),
                                            [&](int r) { return seq.key_offset(t_, n0 + r, kv_head); }, valid_rows,
                                            head_dim, t_.aligned16, tid);
    }
  }

 private:
  const RowsAddr& t_;
  bool strided_ = false;  // dense / varlen rows: one pointer per thread, stepped by the row stride
  bool paged_ = false;    // paged rows: addresses from the row table (fill_paged_rows)
  const int2* paged_rows_;
  const Element* thread_src_ = nullptr;
};

}  // namespace kernels
}  // namespace flashplus
