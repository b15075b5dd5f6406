// fwd_mainloop_sm80.cuh — the MMAs of the sm80 forward: S = Q K^T and O += P V.
//
// Tiles arrive in shared memory through tile_io_sm80.cuh's row gathers. The MMAs read shared
// memory through ldmatrix (transposed for V) one k-slice ahead of the mma.sync that consumes it.
#pragma once

#include <cstdint>

#include <cute/tensor.hpp>

#include "fragment_layout.cuh"
#include "tile_io_sm80.cuh"

namespace flashplus {
namespace kernels {

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

    // The first k-slice's MMAs take a constant zero accumulator (the RZ register) instead of a
    // cleared acc_s: 32 fewer instructions per tile and thread at d = 128.
    Tensor zero = make_fragment_like(acc_s);
    clear(zero);
    copy(copy_q, tSsQ(_, _, _0{}), tSrQ_view(_, _, _0{}));
    copy(copy_k, tSsK(_, _, _0{}), tSrK_view(_, _, _0{}));
    constexpr int kSteps = decltype(size<2>(tSrQ))::value;
#pragma unroll
    for (int k = 0; k < kSteps; ++k) {
      if (k + 1 < kSteps) {
        copy(copy_q, tSsQ(_, _, k + 1), tSrQ_view(_, _, k + 1));
        copy(copy_k, tSsK(_, _, k + 1), tSrK_view(_, _, k + 1));
      }
      if (k == 0) {
        gemm(tiled_mma, acc_s, tSrQ(_, _, k), tSrK(_, _, k), zero);
      } else {
        gemm(tiled_mma, tSrQ(_, _, k), tSrK(_, _, k), acc_s);
      }
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
