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

// Paged K/V: the byte offset (page * page stride + row in page * row stride) of each key row of
// a tile, computed once per row by fill_paged_rows before the tile's loads, into one of two buffers
// (tile parity) in shared memory; -1 for a bad block-table entry. K and V share the table (their
// page and row strides must be equal; kv_layout_fits and the forward kernel check), so each
// 16-byte copy costs one shared load and one 64-bit add, not two 64-bit products of (page, row):
// the per-chunk address work was what made the paged decode loop half again as long as the
// strided one (and, before the table existed, the per-chunk block-table lookups made the loop so
// large that a third of the warps' stall samples were instruction-cache misses).
template <int kRows, int kNThreads, typename Element>
__device__ __forceinline__ void fill_paged_rows(int64_t* table, const SeqlenInfo& seq, const RowsAddr& kv, int n0,
                                                int tid) {
  int64_t* rows = table + ((n0 / kRows) & 1) * kRows;
#pragma unroll
  for (int i = 0; i < (kRows + kNThreads - 1) / kNThreads; ++i) {
    const int r = tid + i * kNThreads;
    if (r < kRows && n0 + r < seq.seqlen_k) {
      const int page = seq.page(seq.page_of(n0 + r));
      rows[r] = page < 0 ? int64_t{-1}
                         : (page * kv.batch_stride + static_cast<int64_t>(seq.row_in_page(n0 + r)) * kv.row_stride) *
                               static_cast<int64_t>(sizeof(Element));
    }
  }
}

// Whether K and V may share fill_paged_rows's table: the same page and row strides.
__host__ __device__ __forceinline__ bool paged_offsets_shared(const RowsAddr& k, const RowsAddr& v) {
  return k.batch_stride == v.batch_stride && k.row_stride == v.row_stride;
}

// Whether row r + 8 of a shared tile lies a fixed distance past row r, for every r and column:
// true of the 8-row swizzle atoms stacked by rows that the sm80 loaders fill.
template <typename Layout>
constexpr bool rows_repeat_every_8(Layout layout) {
  using namespace cute;
  const auto step = layout(8, 0) - layout(0, 0);
  for (int r = 0; r + 8 < size<0>(layout); ++r)
    for (int c = 0; c < size<1>(layout); c += 8)
      if (layout(r + 8, c) - layout(r, c) != step) return false;
  return true;
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
  // paged (strided-only variants, the backward) or cannot share it (kAny: the general gather).
  __device__ __forceinline__ KeyTileLoader(const RowsAddr& t, const SeqlenInfo& seq, int kv_head, int head_dim,
                                           int tid, const int64_t* paged_rows = nullptr)
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
      // The paged-only loader (decode) is branch-free: each chunk is one cp.async that copies, or
      // zero-fills rows past the sequence, features past head_dim and rows of a bad block-table
      // entry; those rows (page() reported them; rare) become NaN after this thread's copies land.
      // With an if / else and a zero store per chunk, and the (page, row) products, a copy took
      // ~24 instructions and the decode kernel spilled; now ~11 (3 of them ptxas's never-executed
      // `@!PT LDS`), no spills, and the kernel's code is a third smaller (sm_80 SASS, bf16 d = 128).
      const int first_row = tid / kChunksPerRow;
      const int col = (tid % kChunksPerRow) * 8;
      const bool column_inside = col < head_dim;
      const int64_t* offsets = paged_rows_ + ((n0 / kRows) & 1) * kRows;
      // Shared-memory destinations: the swizzle of the sm80 tiles (8-row atoms, stacked by rows)
      // repeats every 8 rows, so row r + 8 j lies a constant distance past row r (asserted). The
      // first 8 / kRowStep chunks' addresses serve the rest; computed per chunk, the swizzle took
      // ~11 of the ~24 instructions of each copy.
      static_assert(rows_repeat_every_8(decltype(tile.layout()){}), "the tile's swizzle repeats every 8 rows");
      constexpr int kPattern = 8 % kRowStep == 0 && kChunksPerThread * kRowStep > 8 ? 8 / kRowStep : kChunksPerThread;
      Element* pattern_dst[kPattern];
#pragma unroll
      for (int j = 0; j < kPattern; ++j) pattern_dst[j] = &tile(first_row + j * kRowStep, col);
      const int64_t eight_rows = &tile(8, 0) - &tile(0, 0);
      const char* head_base = reinterpret_cast<const char*>(static_cast<const Element*>(t_.data) +
                                                            static_cast<int64_t>(kv_head) * t_.head_stride + col);
      if constexpr (kMode == KvLoad::kAny) {
        // The general loader keeps a branch per chunk: the branch-free form below raised its
        // spills (~870 to ~1420 bytes with dropout), and it serves paged K/V only outside decode.
#pragma unroll
        for (int it = 0; it < kChunksPerThread; ++it) {
          const int row = first_row + it * kRowStep;
          Element* dst = pattern_dst[it % kPattern] + (it / kPattern) * eight_rows;
          const int64_t offset = row < valid_rows ? offsets[row] : 0;
          if (offset < 0) {
            *reinterpret_cast<uint4*>(dst) = make_uint4(~0u, ~0u, ~0u, ~0u);  // bad entry: NaN keys
          } else if (row < valid_rows && column_inside) {
            cp_async_16(dst, head_base + offset);
          } else {
            *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
          }
        }
        return;
      }
      int bad_high_words = 0;  // the OR of the offsets' high words: negative iff some entry was bad
#pragma unroll
      for (int it = 0; it < kChunksPerThread; ++it) {
        const int row = first_row + it * kRowStep;
        const bool inside = row < valid_rows && column_inside;
        const int64_t offset = inside ? offsets[row] : 0;
        const int high_word = static_cast<int>(static_cast<uint64_t>(offset) >> 32);
        bad_high_words |= high_word;
        Element* dst = pattern_dst[it % kPattern] + (it / kPattern) * eight_rows;
        cp_async_16_or_zero(dst, head_base + offset, inside && high_word >= 0);
      }
      if (bad_high_words < 0) {
        cp_async_wait_own();  // the zero-fills of those rows land first
#pragma unroll 1  // rare: kept out of the instruction cache's way
        for (int it = 0; it < kChunksPerThread; ++it) {
          const int row = first_row + it * kRowStep;
          if (row < valid_rows && column_inside && offsets[row] < 0)
            *reinterpret_cast<uint4*>(&tile(row, col)) = make_uint4(~0u, ~0u, ~0u, ~0u);
        }
      }
    } else if constexpr (kMode == KvLoad::kAny) {
      load_rows<kRows, kHeadDim, kNThreads, true>(tile, static_cast<const Element*>(t_.data),
                                            [&](int r) { return seq.key_offset_or_bad(t_, n0 + r, kv_head); }, valid_rows,
                                            head_dim, t_.aligned16, tid);
    }
  }

 private:
  const RowsAddr& t_;
  bool strided_ = false;  // dense / varlen rows: one pointer per thread, stepped by the row stride
  bool paged_ = false;    // paged rows: addresses from the row table (fill_paged_rows)
  const int64_t* paged_rows_;
  const Element* thread_src_ = nullptr;
};

}  // namespace kernels
}  // namespace flashplus
