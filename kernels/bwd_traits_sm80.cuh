// bwd_traits_sm80.cuh — compile-time shape of the sm80 backward (dK/dV kernel and dQ kernel).
//
// Both kernels work on 64 x 64 (query x key) tiles. Unlike the forward, nothing needs a row
// reduction (P is recomputed elementwise from the saved LSE), so warps may split the key
// dimension too: 4 warps stacked on rows up to d = 128, 4 x 2 warps above, which keeps the two
// fp32 accumulators of the dK/dV kernel (64 x d each) at 128 registers per thread for any d.
//
// Shared memory holds row-major, 128-byte-swizzled tiles (as the forward) plus transposed views
// for the operands read "the other way": P^T and dS^T (A of dV / dK), dO^T and Q^T (B of dV / dK),
// K^T (B of dQ). ldmatrix.trans reads those views.
#pragma once

#include <cute/tensor.hpp>

#include "tile_shape.h"

namespace flashplus {
namespace kernels {

template <typename Element_, int kHeadDim_, bool kHasDropout_>
struct BwdTraitsSm80 {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr bool kHasDropout = kHasDropout_;
  static constexpr TileShape kShape = bwd_tile_shape_sm80(kHeadDim);
  static constexpr int kBlockM = kShape.block_m;  // query rows per tile
  static constexpr int kBlockN = kShape.block_n;  // key rows per tile
  static constexpr int kNWarps = kShape.num_warps;
  static_assert(kBlockM == 64 && kBlockN == 64, "the shared-memory layouts below assume 64 x 64 tiles");
  static constexpr int kNThreads = kNWarps * 32;  // per key group (dK/dV kernel), per CTA (dQ kernel)
  static constexpr int kWarpsN = kNWarps / 4;
  // dK/dV kernel: kKeyGroups groups of kNThreads threads, one 64-key tile each (tile_shape.h).
  static constexpr int kKeyGroups = bwd_key_groups_sm80(kHeadDim);
  static constexpr int kNThreadsDkDv = kNThreads * kKeyGroups;
  static_assert(kHeadDim % 32 == 0);

  static constexpr int kSmemRowElems = kHeadDim % 64 == 0 ? 64 : 32;
  static constexpr int kSwizzleBits = kSmemRowElems == 64 ? 3 : 2;

  using MmaAtom = std::conditional_t<std::is_same_v<Element, cute::half_t>,
                                     cute::MMA_Atom<cute::SM80_16x8x16_F32F16F16F32_TN>,
                                     cute::MMA_Atom<cute::SM80_16x8x16_F32BF16BF16F32_TN>>;
  // Every GEMM of the backward spreads its warps 2 x (2 kWarpsN) over its output tile. The kernels
  // are bound by shared-memory reads (ldmatrix): with 4 warps stacked on the 64 rows, each warp
  // owns 16 rows and reads the whole 64-wide B operand for them (40 ldmatrix.x4 per warp for S =
  // Q K^T at d = 128); 2 x 2 reads 32 rows of A and 32 columns of B (32). The backward needs no
  // row reductions (LSE and D come from shared memory), so warps need not own whole rows.
  //   S = Q K^T, dP = dO V^T (64 x 64); the deterministic dQ kernel's dQ = dS K (64 x d).
  using TiledMma = cute::TiledMMA<MmaAtom, cute::Layout<cute::Shape<cute::_2, cute::Int<2 * kWarpsN>, cute::_1>>,
                                  cute::Tile<cute::_32, cute::Int<32 * kWarpsN>, cute::_16>>;
  //   dV += P^T dO and dK += dS^T Q (64 keys x d).
  using TiledMmaKV = TiledMma;

  // Fused dQ (dK/dV kernel): dQ += dS_g K_g over the key groups g, by all kNThreadsDkDv threads:
  // 2 warps on the 64 rows, the rest side by side on the features (4 on the rows where a feature
  // chunk is not a multiple of 16 x the warps across: d = 96).
  static constexpr int kWarpsDq = kNWarps * kKeyGroups;
  static constexpr int kDqChunk = kHeadDim * 64 <= 32 * kNThreadsDkDv ? kHeadDim : (kHeadDim % 128 == 0 ? 128 : 64);
  static constexpr int kWarpsMDq = kDqChunk % (16 * (kWarpsDq / 2)) == 0 ? 2 : 4;
  static constexpr int kWarpsNDq = kWarpsDq / kWarpsMDq;
  using TiledMmaDq = cute::TiledMMA<MmaAtom, cute::Layout<cute::Shape<cute::Int<kWarpsMDq>, cute::Int<kWarpsNDq>, cute::_1>>,
                                    cute::Tile<cute::Int<16 * kWarpsMDq>, cute::Int<16 * kWarpsNDq>, cute::_16>>;
  // kDqChunk, features per dQ GEMM pass: the whole head while its accumulator is <= 32 registers a
  // thread, else column chunks (a whole (64, d) accumulator next to acc_dk / acc_dv spilled heavily).
  static_assert(kHeadDim % kDqChunk == 0 && kDqChunk % (16 * kWarpsNDq) == 0);

  using SmemLayoutAtom = decltype(cute::composition(
      cute::Swizzle<kSwizzleBits, 3, 3>{},
      cute::Layout<cute::Shape<cute::_8, cute::Int<kSmemRowElems>>, cute::Stride<cute::Int<kSmemRowElems>, cute::_1>>{}));
  // Q, dO (kBlockM rows) and K, V (kBlockN rows): (64, d).
  using SmemLayoutRows = decltype(cute::tile_to_shape(SmemLayoutAtom{}, cute::Shape<cute::_64, cute::Int<kHeadDim>>{}));
  using SmemLayoutRowsT = decltype(cute::composition(
      SmemLayoutRows{}, cute::make_layout(cute::Shape<cute::Int<kHeadDim>, cute::_64>{}, cute::GenRowMajor{})));
  using SmemLayoutRowsTNoSwizzle = decltype(cute::get_nonswizzle_portion(SmemLayoutRowsT{}));

  // P and dS: (kBlockM, kBlockN) = (64, 64).
  using SmemLayoutAtomScores = decltype(cute::composition(
      cute::Swizzle<3, 3, 3>{}, cute::Layout<cute::Shape<cute::_8, cute::_64>, cute::Stride<cute::_64, cute::_1>>{}));
  using SmemLayoutScores = decltype(cute::tile_to_shape(SmemLayoutAtomScores{}, cute::Shape<cute::_64, cute::_64>{}));
  using SmemLayoutScoresT = decltype(cute::composition(
      SmemLayoutScores{}, cute::make_layout(cute::Shape<cute::_64, cute::_64>{}, cute::GenRowMajor{})));
  using SmemLayoutScoresTNoSwizzle = decltype(cute::get_nonswizzle_portion(SmemLayoutScoresT{}));

  using SmemCopyAtom = cute::Copy_Atom<cute::SM75_U32x4_LDSM_N, Element>;
  using SmemCopyAtomTransposed = cute::Copy_Atom<cute::SM75_U16x8_LDSM_T, Element>;

  static constexpr int kRowsTileElems = 64 * kHeadDim;
  static constexpr int kScoresTileElems = 64 * 64;
  // Buffers of the streamed tiles (Q / dO in the dK/dV kernel, K / V in the dQ kernel).
  static constexpr int kStages = bwd_stages_sm80(kHeadDim);
  // dK/dV kernel: kStages x (Q, dO), kKeyGroups x (K, V), kKeyGroups x (P, dS) tiles + kStages x
  // (LSE, D) rows. dQ kernel: Q, dO, kStages x (K, V), dS tiles + LSE and D rows.
  static constexpr int kSmemBytesDkDv =
      ((2 * kStages + 2 * kKeyGroups) * kRowsTileElems + 2 * kKeyGroups * kScoresTileElems) * int(sizeof(Element)) +
      kStages * 2 * kBlockM * 4;
  static constexpr int kSmemBytesDq =
      ((2 + 2 * kStages) * kRowsTileElems + kScoresTileElems) * int(sizeof(Element)) + 2 * kBlockM * 4;
  static_assert(kSmemBytesDkDv == bwd_smem_bytes_sm80(kHeadDim, int(sizeof(Element))), "host and device agree");
};

}  // namespace kernels
}  // namespace flashplus
