// tile_io_sm80.cuh — global <-> shared row transfers of 8-element (16-byte) chunks.
//
// Loads gather rows: every 16-byte chunk of a tile row is fetched through a per-row offset
// function, so dense, varlen and paged K/V (any page size, one block-table lookup per row) share
// one loader. Chunks go through cp.async when the tensor allows 16-byte accesses; otherwise (odd
// strides, or the last chunk of a head dim that is not a multiple of 8) element-wise. Rows past
// the sequence and features past head_dim are zero-filled: zero features leave Q K^T unchanged
// (that is how a head dim is served by the next larger compiled one), zero key rows are masked.
// Stores scatter rows the same way, predicated on rows and head_dim.
#pragma once

#include <cstdint>

#include <cute/tensor.hpp>

namespace flashplus {
namespace kernels {

__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src));
}

// 16 bytes from gmem_src when `copy`, else 16 zero bytes (src-size 0: nothing is read, so
// gmem_src may be any address). One predicate-free instruction for both cases, where an if / else
// with a shared-memory zero store costs a branch per chunk.
__device__ __forceinline__ void cp_async_16_or_zero(void* smem_dst, const void* gmem_src, bool copy) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src), "r"(copy ? 16 : 0));
}

// Waits for every cp.async this thread issued (an extra, empty commit group is harmless to
// callers that wait for all groups).
__device__ __forceinline__ void cp_async_wait_own() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// Up to 8 elements (the rest zero) gathered with 2-byte loads, packed for one 16-byte store. Packing in
// registers matters: element-wise shared stores here once drove ptxas to a 32-register allocation
// with kilobytes of spills for the whole kernel.
template <typename Element>
__device__ __forceinline__ uint4 load_chunk_elementwise(const Element* src, int count) {
  static_assert(sizeof(Element) == 2);
  const uint16_t* bits = reinterpret_cast<const uint16_t*>(src);
  uint32_t words[4];
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    const uint32_t lo = 2 * w < count ? bits[2 * w] : 0u;
    const uint32_t hi = 2 * w + 1 < count ? bits[2 * w + 1] : 0u;
    words[w] = lo | (hi << 16);
  }
  return make_uint4(words[0], words[1], words[2], words[3]);
}

// Fills rows [0, kRows) x features [0, kHeadDim) of the shared tile `tile` (a CuTe tensor, any
// swizzle that keeps 8-element chunks contiguous). Row r < valid_rows comes from
// base + row_offset(r); other rows, and features >= head_dim, become zero. A negative
// row_offset(r) marks a row without valid source (a bad block-table entry,
// SeqlenInfo::key_offset_or_bad): it becomes NaN, as in the paged loaders. kRolled keeps the
// chunk loop a loop: for the main loops' rare layouts (unaligned K/V), whose unrolled copies
// dominated the general forward variant's code size and compile time.
template <int kRows, int kHeadDim, int kNThreads, bool kRolled = false, typename Element, typename SmemTile,
          typename RowOffset>
__device__ __forceinline__ void load_rows(SmemTile& tile, const Element* base, RowOffset row_offset,
                                          int valid_rows, int head_dim, bool aligned16, int tid) {
  constexpr int kChunksPerRow = kHeadDim / 8;
  constexpr int kChunks = kRows * kChunksPerRow;
  static_assert(kChunks % kNThreads == 0, "every thread loads the same number of chunks");
#pragma unroll(kRolled ? 1 : kChunks / kNThreads)
  for (int it = 0; it < kChunks / kNThreads; ++it) {
    const int chunk = tid + it * kNThreads;
    const int row = chunk / kChunksPerRow;
    const int col = (chunk % kChunksPerRow) * 8;
    Element* dst = &tile(row, col);
    if (row < valid_rows && col < head_dim) {
      const int64_t offset = row_offset(row);
      const Element* src = base + offset + col;
      if (offset < 0) {
        *reinterpret_cast<uint4*>(dst) = make_uint4(~0u, ~0u, ~0u, ~0u);  // NaN in fp16 and bf16
      } else if (aligned16 && col + 8 <= head_dim) {
        cp_async_16(dst, src);
      } else {
        *reinterpret_cast<uint4*>(dst) = load_chunk_elementwise(src, head_dim - col);
      }
    } else {
      *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
    }
  }
}

// kChunks 16-byte copies of one thread into column `col` of the tile, rows first_row,
// first_row + kRowStep, ...; src is the first chunk's source and advances by src_step per chunk.
// Rows at or past valid_rows, and every row when !column_inside, are zero-filled instead.
//
// A thread whose chunks all lie inside (every tile but the sequence's last) takes a copy without
// predicates: the guarded form costs per chunk a compare, a predicated zero store and, after
// each such store, three never-executed `@!PT LDS` that ptxas inserts before the cp.async to the
// same address; ~60 issue slots per forward K/V tile pair and thread.
template <int kChunks, int kRowStep, typename SmemTile, typename Element>
__device__ __forceinline__ void copy_strided_chunks(SmemTile& tile, const Element* src, int64_t src_step,
                                                    int first_row, int col, int valid_rows, bool column_inside) {
  if (column_inside && first_row + (kChunks - 1) * kRowStep < valid_rows) {
#pragma unroll
    for (int it = 0; it < kChunks; ++it) {
      cp_async_16(&tile(first_row + it * kRowStep, col), src);
      src += src_step;
    }
    return;
  }
#pragma unroll
  for (int it = 0; it < kChunks; ++it) {
    const int row = first_row + it * kRowStep;
    Element* dst = &tile(row, col);
    if (row < valid_rows && column_inside) {
      cp_async_16(dst, src);
    } else {
      *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
    }
    src += src_step;
  }
}

// load_rows for rows a fixed stride apart (query rows of every layout; dense and varlen keys):
// row r of the tile starts at row0 + r * row_stride. When the threads cover whole rows per pass
// and 16-byte copies are allowed, each thread keeps one column and steps one pointer: the
// backward's per-step Q / dO loads spent more issue slots on per-chunk 64-bit offsets (and on
// reloading their spilled operands) than on the copies.
template <int kRows, int kHeadDim, int kNThreads, typename Element, typename SmemTile>
__device__ __forceinline__ void load_strided_rows(SmemTile& tile, const Element* row0, int64_t row_stride,
                                                  int valid_rows, int head_dim, bool aligned16, int tid) {
  constexpr int kChunksPerRow = kHeadDim / 8;
  if constexpr (kNThreads % kChunksPerRow == 0) {
    if (aligned16 && head_dim % 8 == 0) {
      constexpr int kRowStep = kNThreads / kChunksPerRow;
      const int first_row = tid / kChunksPerRow;
      const int col = (tid % kChunksPerRow) * 8;
      copy_strided_chunks<kRows / kRowStep, kRowStep>(tile, row0 + first_row * row_stride + col,
                                                      kRowStep * row_stride, first_row, col, valid_rows,
                                                      col < head_dim);
      return;
    }
  }
  load_rows<kRows, kHeadDim, kNThreads>(tile, row0, [&](int r) { return r * row_stride; }, valid_rows, head_dim,
                                        aligned16, tid);
}

// Writes rows [0, valid_rows) x features [0, head_dim) of the shared tile `tile` to
// base + row_offset(r); 16-byte stores when aligned16, element-wise otherwise.
template <int kRows, int kHeadDim, int kNThreads, typename Element, typename SmemTile, typename RowOffset>
__device__ __forceinline__ void store_rows(const SmemTile& tile, Element* base, RowOffset row_offset, int valid_rows,
                                           int head_dim, bool aligned16, int tid) {
  constexpr int kChunksPerRow = kHeadDim / 8;
  constexpr int kChunks = kRows * kChunksPerRow;
  static_assert(kChunks % kNThreads == 0, "every thread stores the same number of chunks");
#pragma unroll
  for (int it = 0; it < kChunks / kNThreads; ++it) {
    const int chunk = tid + it * kNThreads;
    const int row = chunk / kChunksPerRow;
    const int col = (chunk % kChunksPerRow) * 8;
    if (row >= valid_rows || col >= head_dim) continue;
    const Element* src = &tile(row, col);
    Element* dst = base + row_offset(row) + col;
    if (aligned16 && col + 8 <= head_dim) {
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
    } else {
      for (int e = 0; e < 8 && col + e < head_dim; ++e) dst[e] = src[e];
    }
  }
}

// store_rows for rows a fixed stride apart (row r of the destination at row0 + r * row_stride):
// the forward's O, the backward's dK / dV / dQ. As load_strided_rows, each thread keeps one column
// and steps one pointer when the threads cover whole rows per pass and 16-byte stores are allowed;
// the general store_rows re-derived row, column, swizzled source and 64-bit destination per chunk
// (~45 issued instructions per 16-byte store, ~700 per warp and CTA for the forward's O tile).
template <int kRows, int kHeadDim, int kNThreads, typename Element, typename SmemTile>
__device__ __forceinline__ void store_strided_rows(const SmemTile& tile, Element* row0, int64_t row_stride,
                                                   int valid_rows, int head_dim, bool aligned16, int tid) {
  constexpr int kChunksPerRow = kHeadDim / 8;
  if constexpr (kNThreads % kChunksPerRow == 0 && kRows % (kNThreads / kChunksPerRow) == 0) {
    if (aligned16 && head_dim % 8 == 0) {
      constexpr int kRowStep = kNThreads / kChunksPerRow;
      const int first_row = tid / kChunksPerRow;
      const int col = (tid % kChunksPerRow) * 8;
      if (col >= head_dim) return;
      Element* dst = row0 + first_row * row_stride + col;
#pragma unroll
      for (int it = 0; it < kRows / kRowStep; ++it) {
        const int row = first_row + it * kRowStep;
        if (row < valid_rows) *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(&tile(row, col));
        dst += kRowStep * row_stride;
      }
      return;
    }
  }
  store_rows<kRows, kHeadDim, kNThreads>(tile, row0, [&](int r) { return r * row_stride; }, valid_rows, head_dim,
                                         aligned16, tid);
}

}  // namespace kernels
}  // namespace flashplus
