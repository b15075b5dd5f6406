// fwd_traits_sm80.cuh — compile-time shape of the sm80 forward: tiles, MMA, shared-memory layouts.
//
// The sm80 path: mma.sync m16n8k16 (fp32 accumulate), cp.async for global -> shared, ldmatrix for
// shared -> registers. Warps are stacked along the query rows (Layout<kNWarps, 1, 1>), so each query
// row belongs to exactly one warp and the softmax row reductions never leave a quad of lanes.
//
// Shared memory: Q (kBlockM x kHeadDim), then kKvStages K buffers and kKvStages V buffers
// (kBlockN x kHeadDim each), all row-major with a 128-byte XOR swizzle (Swizzle<3,3,3> on
// 64-element rows; <2,3,3> on 32-element rows when d is not a multiple of 64) so that both the
// 16-byte cp.async stores and the ldmatrix reads are free of bank conflicts. V is read transposed
// (ldmatrix.trans) as the B operand of P @ V.
//
// The decode tile (kDecodeTile) is the exception to "warps along the rows": its 16 rows are one MMA
// fragment, and its kKeySplitWarps warps each run that one-warp MMA on their own 16-key slice of
// every K/V tile (TiledMma is one warp; kMmaThreads = 32), with their own softmax state, merged at
// the end (fwd_kernel_sm80.cuh). All kNThreads threads load Q, K and V.
#pragma once

#include <cute/tensor.hpp>

#include "tile_shape.h"

namespace flashplus {
namespace kernels {

// kDecodeTile: the 16-row tile of short queries, warps splitting the keys (tile_shape.h). kKvLoad:
// the K/V layouts its loader reads (tile_shape.h); the host picks a specialised variant only for K/V that fit it
// (kv_layout_fits in cuda_backend.cu).
template <typename Element_, int kHeadDim_, bool kHasDropout_, bool kDecodeTile_ = false,
          KvLoad kKvLoad_ = KvLoad::kAny>
struct FwdTraitsSm80 {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr bool kHasDropout = kHasDropout_;
  static constexpr bool kDecodeTile = kDecodeTile_;
  static constexpr KvLoad kKvLoad = kKvLoad_;
  static constexpr TileShape kShape = fwd_tile_shape_sm80(kHeadDim, kDecodeTile);
  static constexpr int kBlockM = kShape.block_m;
  static constexpr int kBlockN = kShape.block_n;
  static constexpr int kNWarps = kShape.num_warps;
  static constexpr int kNThreads = kNWarps * 32;
  static constexpr int kLoadThreads = fwd_load_threads_sm80(kHeadDim, kDecodeTile);  // threads 0 .. that load
  static constexpr int kMinCtasPerSm = kShape.min_ctas_per_sm;  // __launch_bounds__
  static constexpr int kKeySplitWarps = fwd_key_split_warps_sm80(kHeadDim, kDecodeTile);
  static constexpr int kMmaWarps = kNWarps / kKeySplitWarps;  // warps stacked along the rows
  static constexpr int kMmaThreads = kMmaWarps * 32;          // threads of one TiledMma (and epilogue)
  static constexpr int kWarpKeys = kBlockN / kKeySplitWarps;  // keys of a tile each MMA group owns
  static_assert(kHeadDim % 32 == 0, "compiled head dims are multiples of 32");
  static_assert(kBlockM % (16 * kMmaWarps) == 0, "each warp owns whole 16-row MMA fragments");
  static_assert(kWarpKeys % 16 == 0, "a key slice is whole ldmatrix.x4 B fragments");

  static constexpr int kSmemRowElems = kHeadDim % 64 == 0 ? 64 : 32;  // swizzle atom width
  static constexpr int kSwizzleBits = kSmemRowElems == 64 ? 3 : 2;

  using MmaAtom = std::conditional_t<std::is_same_v<Element, cute::half_t>,
                                     cute::MMA_Atom<cute::SM80_16x8x16_F32F16F16F32_TN>,
                                     cute::MMA_Atom<cute::SM80_16x8x16_F32BF16BF16F32_TN>>;
  // N tile of 16 lets ldmatrix.x4 feed two n8 MMAs of the B operand at once.
  using TiledMma = cute::TiledMMA<MmaAtom, cute::Layout<cute::Shape<cute::Int<kMmaWarps>, cute::_1, cute::_1>>,
                                  cute::Tile<cute::Int<16 * kMmaWarps>, cute::_16, cute::_16>>;

  using SmemLayoutAtom = decltype(cute::composition(
      cute::Swizzle<kSwizzleBits, 3, 3>{},
      cute::Layout<cute::Shape<cute::_8, cute::Int<kSmemRowElems>>, cute::Stride<cute::Int<kSmemRowElems>, cute::_1>>{}));
  using SmemLayoutQ = decltype(cute::tile_to_shape(SmemLayoutAtom{}, cute::Shape<cute::Int<kBlockM>, cute::Int<kHeadDim>>{}));
  using SmemLayoutKV = decltype(cute::tile_to_shape(SmemLayoutAtom{}, cute::Shape<cute::Int<kBlockN>, cute::Int<kHeadDim>>{}));
  // V viewed as (kHeadDim, kBlockN): the B operand of O += P @ V.
  using SmemLayoutVt = decltype(cute::composition(
      SmemLayoutKV{}, cute::make_layout(cute::Shape<cute::Int<kHeadDim>, cute::Int<kBlockN>>{}, cute::GenRowMajor{})));
  using SmemLayoutVtNoSwizzle = decltype(cute::get_nonswizzle_portion(SmemLayoutVt{}));

  using SmemCopyAtom = cute::Copy_Atom<cute::SM75_U32x4_LDSM_N, Element>;
  using SmemCopyAtomTransposed = cute::Copy_Atom<cute::SM75_U16x8_LDSM_T, Element>;

  static constexpr int kSmemQElems = kBlockM * kHeadDim;
  static constexpr int kSmemKVElems = kBlockN * kHeadDim;  // one K (or V) buffer
  static constexpr int kKvStages = fwd_kv_stages_sm80(kHeadDim, kDecodeTile);  // K / V buffer pairs
  static constexpr int kSmemTableBytes = kKvLoad == KvLoad::kStrided ? 0 : paged_table_bytes(kBlockN);  // after V
  static constexpr int kSmemBytes =
      (kSmemQElems + 2 * kKvStages * kSmemKVElems) * int(sizeof(Element)) + kSmemTableBytes;
  static_assert(kSmemBytes == fwd_smem_bytes_sm80(kHeadDim, int(sizeof(Element)), kDecodeTile, kKvLoad),
                "host and device agree");
};

}  // namespace kernels
}  // namespace flashplus
