// fwd_traits_sm90.cuh — compile-time shape of the sm90 forward: tiles, wgmma, shared-memory layouts.
//
// The sm90 path: wgmma (warpgroup MMA, sm_90a) with fp32 accumulators, operands read straight from
// shared memory through descriptors, so no ldmatrix and no register copies of Q, K or V. Two
// warpgroups stack on the query rows (AtomLayout 2 x 1), 64 rows each; a row's values lie in one
// quad of lanes (fragment_layout.cuh), as on sm80, so the softmax code is shared.
//
// Shared memory: Q (kBlockM x kHeadDim) and kStages x K, V (kBlockN x kHeadDim), all K-major with
// the 128-byte swizzle that wgmma descriptors describe (GMMA::Layout_K_SW128_Atom: rows of 64
// elements, 16-byte chunks XOR-ed by row % 8). 8-element chunks stay contiguous, so the sm80 row
// loaders (cp.async, 16 bytes) fill these tiles unchanged. S = Q K^T reads K as its K-major B
// operand; O = P V reads the same V tile through a transposed view (kHeadDim x kBlockN, head dim
// contiguous), an MN-major B operand, so V is never transposed in memory.
#pragma once

#include <cute/arch/mma_sm90.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cute/tensor.hpp>

#include "tile_shape.h"

namespace flashplus {
namespace kernels {

template <typename Element_, int kHeadDim_>
struct FwdTraitsSm90 {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr bool kHasDropout = false;  // dropout calls run the sm80 path
  static constexpr TileShape kShape = fwd_tile_shape_sm90(kHeadDim);
  static constexpr int kBlockM = kShape.block_m;
  static constexpr int kBlockN = kShape.block_n;
  static constexpr int kNWarps = kShape.num_warps;
  static constexpr int kNThreads = kNWarps * 32;
  static constexpr int kMmaThreads = kNThreads;  // the epilogue's threads (fwd_epilogue.cuh)
  static constexpr int kCtasPerSm = kShape.min_ctas_per_sm;  // __launch_bounds__ (tile_shape.h says why)
  static constexpr int kStages = kFwdStagesSm90;
  static_assert(kHeadDim % 64 == 0, "the 128-byte swizzle needs rows of 64 elements");
  static_assert(kBlockM == 64 * (kNWarps / 4), "one warpgroup per 64 query rows");

  using AtomLayoutWarpgroups = cute::Layout<cute::Shape<cute::Int<kNWarps / 4>, cute::_1, cute::_1>>;
  // S (kBlockM x kBlockN) = Q K^T: both operands K-major in shared memory.
  using TiledMmaQK = decltype(cute::make_tiled_mma(
      cute::GMMA::ss_op_selector<Element, Element, float, cute::Shape<cute::_64, cute::Int<kBlockN>, cute::Int<kHeadDim>>>(),
      AtomLayoutWarpgroups{}));
  // O (kBlockM x kHeadDim) += P V: P from registers (K-major by construction), V MN-major.
  using TiledMmaPV = decltype(cute::make_tiled_mma(
      cute::GMMA::rs_op_selector<Element, Element, float, cute::Shape<cute::_64, cute::Int<kHeadDim>, cute::Int<kBlockN>>,
                                 cute::GMMA::Major::K, cute::GMMA::Major::MN>(),
      AtomLayoutWarpgroups{}));
  // What the epilogue (fwd_epilogue.cuh) partitions O with.
  using TiledMma = TiledMmaPV;

  using SmemLayoutAtom = cute::GMMA::Layout_K_SW128_Atom<Element>;
  using SmemLayoutQ = decltype(cute::tile_to_shape(SmemLayoutAtom{}, cute::Shape<cute::Int<kBlockM>, cute::Int<kHeadDim>>{}));
  using SmemLayoutKV = decltype(cute::tile_to_shape(
      SmemLayoutAtom{}, cute::Shape<cute::Int<kBlockN>, cute::Int<kHeadDim>, cute::Int<kStages>>{}));
  // V as (kHeadDim, kBlockN, stage): the same bytes, coordinates swapped.
  using SmemLayoutVt = decltype(cute::composition(
      SmemLayoutKV{}, cute::make_layout(cute::Shape<cute::Int<kHeadDim>, cute::Int<kBlockN>, cute::Int<kStages>>{},
                                        cute::Stride<cute::Int<kBlockN>, cute::_1, cute::Int<kBlockN * kHeadDim>>{})));

  static constexpr int kSmemQElems = kBlockM * kHeadDim;
  static constexpr int kSmemKVElems = kStages * kBlockN * kHeadDim;
  static constexpr int kSmemBytes = (kSmemQElems + 2 * kSmemKVElems) * int(sizeof(Element));
  static_assert(kSmemBytes == fwd_smem_bytes_sm90(kHeadDim, int(sizeof(Element))), "host and device agree");
  // The 128-byte swizzle is a function of address bits 4..9: every tile must start 1024-byte aligned.
  static_assert((kSmemQElems * sizeof(Element)) % 1024 == 0 && (kSmemKVElems * sizeof(Element)) % 1024 == 0);
};

}  // namespace kernels
}  // namespace flashplus
