// fwd_mainloop_sm90.cuh — issuing and waiting for the wgmma GEMMs of the sm90 forward:
// S = Q K^T and O += P V.
//
// A GEMM over a whole tile is one wgmma group (one instruction per 16-wide k-slice). wgmma runs
// asynchronously: the kernel issues a group, may issue another or run the softmax, and waits when
// it needs the result. The operand fences keep the compiler from moving register reads or writes
// of the accumulators (and of P, the register A operand) across the asynchronous MMAs.
//
// Tiles arrive in shared memory through the sm80 row loaders (cp.async, generic proxy), while
// wgmma reads shared memory through the async proxy: make_tile_visible_to_wgmma() must run in
// every writing thread after its copies completed and before the barrier that precedes the MMAs.
#pragma once

#include <type_traits>

#include <cute/arch/mma_sm90_gmma.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cute/tensor.hpp>

namespace flashplus {
namespace kernels {

__device__ __forceinline__ void make_tile_visible_to_wgmma() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// A register fragment (P in O += P V), not a descriptor fragment of shared memory (Q in S = Q K^T).
template <typename Frag>
constexpr bool kIsRegisterFragment =
    !std::is_same_v<std::decay_t<typename Frag::iterator>, cute::GMMA::DescriptorIterator>;

// Issues acc (MMA, MMA_M, MMA_N) = A B (kZeroInit) or += A B over all k-slices of the fragments as
// one wgmma group and returns without waiting; A and B are (MMA, MMA_M | MMA_N, MMA_K). Until the
// group has been waited for (wgmma_wait), the caller must not touch acc or a register A.
template <bool kZeroInit, typename TiledMma, typename FragA, typename FragB, typename Acc>
__device__ __forceinline__ void wgmma_issue(TiledMma& tiled_mma, FragA& a, FragB const& b, Acc& acc) {
  using namespace cute;
  if constexpr (kIsRegisterFragment<FragA>) warpgroup_fence_operand(a);
  warpgroup_fence_operand(acc);
  warpgroup_arrive();
  tiled_mma.accumulate_ = kZeroInit ? GMMA::ScaleOut::Zero : GMMA::ScaleOut::One;
#pragma unroll
  for (int k = 0; k < size<2>(a); ++k) {
    gemm(tiled_mma, a(_, _, k), b(_, _, k), acc);
    tiled_mma.accumulate_ = GMMA::ScaleOut::One;
  }
  warpgroup_commit_batch();
}

// Waits until at most kPending wgmma groups of this warpgroup are in flight, then fences the
// register operands of the groups that finished (accumulators, register A): the compiler sees an
// MMA's register reads and writes at its issue, so without the fence it could reuse a register A,
// or move an accumulator access, while the hardware still works on it.
template <int kPending, typename... Fragments>
__device__ __forceinline__ void wgmma_wait(Fragments&... finished) {
  cute::warpgroup_wait<kPending>();
  (cute::warpgroup_fence_operand(finished), ...);
}

}  // namespace kernels
}  // namespace flashplus
