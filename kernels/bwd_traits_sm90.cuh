// bwd_traits_sm90.cuh — compile-time shape of the sm90 (wgmma) backward: tiles, the four wgmma
// kinds, shared-memory layouts.
//
// Up to d = 128 one CTA owns 128 keys of one K/V head; its two warpgroups own 64 keys each. Per
// query tile of m = 64 rows (128 at d = 64, tile_shape.h):
//   S^T  = K Q^T     (128 x m)   A = K, B = Q: both K-major in shared memory
//   dP^T = V dO^T    (128 x m)   A = V, B = dO
//   dV  += P^T dO    (128 x d)   A = P^T from registers (S^T's accumulator, converted), B = dO
//                                read through a transposed view (MN-major)
//   dK  += dS^T Q    (128 x d)   A = dS^T from registers, B = Q transposed (MN-major)
//   dQ   = dS K      (m x d)     A = dS (dS^T stored with queries contiguous, read MN-major),
//                                B = K transposed (MN-major); the warpgroups split the features
// Computing the transposed products makes every key's values live in one thread quad, as rows,
// so P^T and dS^T need no transpose to become the A operands of dV and dK.
//
// Above d = 128 (kSplitFeatures) one CTA owns 64 keys and the warpgroups split the work instead
// of the keys: S^T and dP^T by query columns (m / 2 each), dV, dK and dQ by features (d / 2
// each). A warpgroup then holds only half of a key's P^T and dS^T, so both go to shared memory and
// dV / dK read their A operand from there; in exchange dK + dV take 128 registers, not 256.
//
// Every tile is K-major with the 128-byte swizzle (GMMA::Layout_K_SW128_Atom: rows of 64
// elements), which the sm80 row loaders (16-byte cp.async) fill unchanged; the MN-major operands
// are views of the same bytes with coordinates swapped.
#pragma once

#include <type_traits>

#include <cute/arch/mma_sm90.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cute/tensor.hpp>

#include "tile_shape.h"

namespace flashplus {
namespace kernels {

template <typename Element_, int kHeadDim_>
struct BwdTraitsSm90 {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr TileShape kShape = bwd_tile_shape_sm90(kHeadDim);
  static constexpr int kBlockM = kShape.block_m;  // query rows per step
  static constexpr int kBlockN = kShape.block_n;  // keys per CTA
  static constexpr int kNWarps = kShape.num_warps;
  static constexpr int kNThreads = kNWarps * 32;
  static constexpr int kStages = kBwdStagesSm90;
  static constexpr bool kSplitFeatures = bwd_split_features_sm90(kHeadDim);
  static constexpr int kWarpgroups = kNWarps / 4;
  static_assert(kHeadDim % 64 == 0 && kHeadDim <= 256, "rows of 64-element swizzle atoms");
  static_assert(kBlockN == (kSplitFeatures ? 64 : 64 * kWarpgroups) && kBlockM % 64 == 0,
                "64 keys per warpgroup (all 64 when the features are split); whole swizzle rows of dS");

  using Major = cute::GMMA::Major;
  using KeysOnWarpgroups = cute::Layout<cute::Shape<cute::Int<kWarpgroups>, cute::_1, cute::_1>>;
  using FeaturesOnWarpgroups = cute::Layout<cute::Shape<cute::_1, cute::Int<kWarpgroups>, cute::_1>>;
  using QueriesOnWarpgroups = FeaturesOnWarpgroups;  // the N of S^T / dP^T is the query column
  // S^T and dP^T: (kBlockN, kBlockM), k = head dim; by keys, or by query columns when split.
  static constexpr int kSdPColumnsPerWarpgroup = kSplitFeatures ? kBlockM / kWarpgroups : kBlockM;
  using TiledMmaSdP = decltype(cute::make_tiled_mma(
      cute::GMMA::ss_op_selector<Element, Element, float,
                                 cute::Shape<cute::_64, cute::Int<kSdPColumnsPerWarpgroup>, cute::Int<kHeadDim>>>(),
      std::conditional_t<kSplitFeatures, QueriesOnWarpgroups, KeysOnWarpgroups>{}));
  // dV and dK: (kBlockN, kHeadDim), k = query rows. A = P^T / dS^T from registers; when split,
  // from shared memory (K-major: queries contiguous), each warpgroup d / 2 features.
  static constexpr int kKVFeaturesPerWarpgroup = kSplitFeatures ? kHeadDim / kWarpgroups : kHeadDim;
  using KVShape = cute::Shape<cute::_64, cute::Int<kKVFeaturesPerWarpgroup>, cute::Int<kBlockM>>;
  using TiledMmaKV = std::conditional_t<
      kSplitFeatures,
      decltype(cute::make_tiled_mma(cute::GMMA::ss_op_selector<Element, Element, float, KVShape, Major::K, Major::MN>(),
                                    FeaturesOnWarpgroups{})),
      decltype(cute::make_tiled_mma(cute::GMMA::rs_op_selector<Element, Element, float, KVShape, Major::K, Major::MN>(),
                                    KeysOnWarpgroups{}))>;
  // dQ: (kBlockM, kHeadDim), k = keys, in kDqPasses passes over the features, each warpgroup half
  // of a pass's features. Two passes when split, so that dQ's accumulator (64 registers) fits
  // next to dK and dV (128) while they run.
  static constexpr int kDqPasses = kSplitFeatures ? 2 : 1;
  static constexpr int kDqFeaturesPerPass = kHeadDim / kDqPasses;
  static constexpr int kDqFeaturesPerWarpgroup = kDqFeaturesPerPass / kWarpgroups;
  using TiledMmaDq = decltype(cute::make_tiled_mma(
      cute::GMMA::ss_op_selector<Element, Element, float,
                                 cute::Shape<cute::_64, cute::Int<kDqFeaturesPerWarpgroup>, cute::Int<kBlockN>>, Major::MN,
                                 Major::MN>(),
      FeaturesOnWarpgroups{}));

  using SmemLayoutAtom = cute::GMMA::Layout_K_SW128_Atom<Element>;
  // K and V: (kBlockN, kHeadDim); K^T (kHeadDim, kBlockN) for dQ.
  using SmemLayoutKV = decltype(cute::tile_to_shape(SmemLayoutAtom{}, cute::Shape<cute::Int<kBlockN>, cute::Int<kHeadDim>>{}));
  using SmemLayoutKt = decltype(cute::composition(
      SmemLayoutKV{}, cute::make_layout(cute::Shape<cute::Int<kHeadDim>, cute::Int<kBlockN>>{},
                                        cute::Stride<cute::Int<kBlockN>, cute::_1>{})));
  // Q and dO: (kBlockM, kHeadDim, stage); transposed (kHeadDim, kBlockM, stage) for dK and dV.
  using SmemLayoutQ = decltype(cute::tile_to_shape(
      SmemLayoutAtom{}, cute::Shape<cute::Int<kBlockM>, cute::Int<kHeadDim>, cute::Int<kStages>>{}));
  using SmemLayoutQt = decltype(cute::composition(
      SmemLayoutQ{}, cute::make_layout(cute::Shape<cute::Int<kHeadDim>, cute::Int<kBlockM>, cute::Int<kStages>>{},
                                       cute::Stride<cute::Int<kBlockM>, cute::_1, cute::Int<kBlockM * kHeadDim>>{})));
  // dS^T as (kBlockN, kBlockM), queries contiguous (each thread's (c, c + 1) pair is one 32-bit
  // store); dS (kBlockM, kBlockN) is the transposed view, the MN-major A of dQ.
  using SmemLayoutDsT = decltype(cute::tile_to_shape(SmemLayoutAtom{}, cute::Shape<cute::Int<kBlockN>, cute::Int<kBlockM>>{}));
  using SmemLayoutDs = decltype(cute::composition(
      SmemLayoutDsT{}, cute::make_layout(cute::Shape<cute::Int<kBlockM>, cute::Int<kBlockN>>{},
                                         cute::Stride<cute::Int<kBlockN>, cute::_1>{})));

  static constexpr int kSmemKVElems = kBlockN * kHeadDim;
  static constexpr int kSmemQElems = kStages * kBlockM * kHeadDim;
  static constexpr int kSmemDsElems = kBlockN * kBlockM;
  static constexpr int kSmemPElems = kSplitFeatures ? kBlockN * kBlockM : 0;  // P^T, same layout as dS^T
  static constexpr int kSmemBytes = (2 * kSmemKVElems + 2 * kSmemQElems + kSmemDsElems + kSmemPElems) * int(sizeof(Element)) +
                                    kStages * 2 * kBlockM * 4;
  static_assert(kSmemBytes == bwd_smem_bytes_sm90(kHeadDim, int(sizeof(Element))), "host and device agree");
  // The 128-byte swizzle is a function of address bits 4..9: every tile must start 1024-byte aligned.
  static_assert((kSmemKVElems * sizeof(Element)) % 1024 == 0 && (kSmemQElems * sizeof(Element)) % 1024 == 0 &&
                (kSmemDsElems * sizeof(Element)) % 1024 == 0);
};

}  // namespace kernels
}  // namespace flashplus
