// fwd_mainloop_sm80.cuh — loads and MMAs of the sm80 forward: global -> shared row gathers,
// S = Q K^T and O += P V.
//
// Loads gather rows: every 16-byte chunk of a tile row is fetched through a per-row offset
// function, so dense, varlen and paged K/V (any page size, one block-table lookup per row) share
// one loader. Chunks go through cp.async when the tensor allows 16-byte accesses; otherwise (odd
// strides, or the last chunk of a head dim that is not a multiple of 8) element-wise. Rows past
// the sequence and features past head_dim are zero-filled: zero features leave Q K^T unchanged
// (that is how a head dim is served by the next larger compiled one), zero key rows are masked.
//
// The MMAs read shared memory through ldmatrix (transposed for V) one k-slice ahead of the
// mma.sync that consumes it.
#pragma once

#include <cstdint>

#include <cute/tensor.hpp>

#include "fragment_layout_sm80.cuh"

namespace flashplus {
namespace kernels {

__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src));
}

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
// base + row_offset(r); other rows, and features >= head_dim, become zero.
template <int kRows, int kHeadDim, int kNThreads, typename Element, typename SmemTile, typename RowOffset>
__device__ __forceinline__ void load_rows(SmemTile& tile, const Element* base, RowOffset row_offset,
                                          int valid_rows, int head_dim, bool aligned16, int tid) {
  constexpr int kChunksPerRow = kHeadDim / 8;
  constexpr int kChunks = kRows * kChunksPerRow;
  static_assert(kChunks % kNThreads == 0, "every thread loads the same number of chunks");
#pragma unroll
  for (int it = 0; it < kChunks / kNThreads; ++it) {
    const int chunk = tid + it * kNThreads;
    const int row = chunk / kChunksPerRow;
    const int col = (chunk % kChunksPerRow) * 8;
    Element* dst = &tile(row, col);
    if (row < valid_rows && col < head_dim) {
      const Element* src = base + row_offset(row) + col;
      if (aligned16 && col + 8 <= head_dim) {
        cp_async_16(dst, src);
      } else {
        *reinterpret_cast<uint4*>(dst) = load_chunk_elementwise(src, head_dim - col);
      }
    } else {
      *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
    }
  }
}

template <typename Traits>
struct FwdMainloopSm80 {
  using Element = typename Traits::Element;
  using TiledMma = typename Traits::TiledMma;

  // acc_s (MMA, MMA_M, MMA_N) = Q @ K^T for the tiles in shared memory.
  template <typename AccS, typename SmemQ, typename SmemK>
  __device__ __forceinline__ static void gemm_qk(AccS& acc_s, const SmemQ& sQ, const SmemK& sK, int tid) {
    using namespace cute;
    TiledMma tiled_mma;
    auto thr_mma = tiled_mma.get_thread_slice(tid);
    Tensor tSrQ = thr_mma.partition_fragment_A(sQ);  // (MMA, MMA_M, MMA_K)
    Tensor tSrK = thr_mma.partition_fragment_B(sK);  // (MMA, MMA_N, MMA_K)

    auto copy_q = make_tiled_copy_A(typename Traits::SmemCopyAtom{}, tiled_mma);
    auto thr_copy_q = copy_q.get_thread_slice(tid);
    Tensor tSsQ = thr_copy_q.partition_S(sQ);
    Tensor tSrQ_view = thr_copy_q.retile_D(tSrQ);
    auto copy_k = make_tiled_copy_B(typename Traits::SmemCopyAtom{}, tiled_mma);
    auto thr_copy_k = copy_k.get_thread_slice(tid);
    Tensor tSsK = thr_copy_k.partition_S(sK);
    Tensor tSrK_view = thr_copy_k.retile_D(tSrK);

    clear(acc_s);
    copy(copy_q, tSsQ(_, _, _0{}), tSrQ_view(_, _, _0{}));
    copy(copy_k, tSsK(_, _, _0{}), tSrK_view(_, _, _0{}));
    constexpr int kSteps = decltype(size<2>(tSrQ))::value;
#pragma unroll
    for (int k = 0; k < kSteps; ++k) {
      if (k + 1 < kSteps) {
        copy(copy_q, tSsQ(_, _, k + 1), tSrQ_view(_, _, k + 1));
        copy(copy_k, tSsK(_, _, k + 1), tSrK_view(_, _, k + 1));
      }
      gemm(tiled_mma, tSrQ(_, _, k), tSrK(_, _, k), acc_s);
    }
  }

  // acc_o (MMA, MMA_M, MMA_N_d) += P @ V, with P the probabilities in registers in accumulator
  // layout (MMA, MMA_M, MMA_N) already converted to Element.
  template <typename AccO, typename RegP, typename SmemVt, typename SmemVtNoSwizzle>
  __device__ __forceinline__ static void gemm_pv(AccO& acc_o, const RegP& rP, const SmemVt& sVt,
                                                 const SmemVtNoSwizzle& sVt_no_swizzle, int tid) {
    using namespace cute;
    TiledMma tiled_mma;
    auto thr_mma = tiled_mma.get_thread_slice(tid);
    Tensor tOrP = make_tensor(rP.data(), acc_as_a_operand_layout(rP.layout()));  // (MMA, MMA_M, MMA_K)
    Tensor tOrVt = thr_mma.partition_fragment_B(sVt_no_swizzle);                 // (MMA, MMA_N, MMA_K)

    auto copy_v = make_tiled_copy_B(typename Traits::SmemCopyAtomTransposed{}, tiled_mma);
    auto thr_copy_v = copy_v.get_thread_slice(tid);
    Tensor tOsVt = thr_copy_v.partition_S(sVt);
    Tensor tOrVt_view = thr_copy_v.retile_D(tOrVt);

    copy(copy_v, tOsVt(_, _, _0{}), tOrVt_view(_, _, _0{}));
    constexpr int kSteps = decltype(size<2>(tOrP))::value;
    static_assert(kSteps == decltype(size<2>(tOrVt))::value);
#pragma unroll
    for (int k = 0; k < kSteps; ++k) {
      if (k + 1 < kSteps) copy(copy_v, tOsVt(_, _, k + 1), tOrVt_view(_, _, k + 1));
      gemm(tiled_mma, tOrP(_, _, k), tOrVt(_, _, k), acc_o);
    }
  }
};

}  // namespace kernels
}  // namespace flashplus
