// fwd_tile_shape.h — the forward tile sizes of each path, as constexpr functions of the head dim.
//
// Why a separate header without CuTe: the host side (split-KV heuristic, workspace sizing in
// cuda_backend.cu) must use exactly the tile sizes the kernels were compiled with, but should not
// pay for parsing CuTe. The kernel traits (fwd_traits_sm80.cuh) read their sizes from here, so the
// two can never disagree.
#pragma once

namespace flashplus {
namespace kernels {

struct FwdTileShape {
  int block_m;   // query rows per CTA
  int block_n;   // key rows per mainloop step
  int num_warps; // warps per CTA; warp w owns query rows {16 w + 16 num_warps t}
};

// sm80 path (mma.sync m16n8k16). Up to d = 128, 4 warps each own 32 query rows; above that the
// accumulator (d fp32 values per row) no longer fits 4 warps' registers, so 8 warps own 16 rows each.
constexpr FwdTileShape fwd_tile_shape_sm80(int head_dim) {
  return head_dim <= 128 ? FwdTileShape{128, 64, 4} : FwdTileShape{128, 64, 8};
}

// Most splits of the key range one forward call makes (and most partials one combine launch
// reads). More would not help: a split needs at least one key tile of work.
constexpr int kMaxSplits = 32;

}  // namespace kernels
}  // namespace flashplus
