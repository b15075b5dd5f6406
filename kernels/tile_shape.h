// tile_shape.h — the tile sizes and shared-memory footprints of each path, as constexpr functions
// of the head dim.
//
// Why a separate header without CuTe: the host side (split-KV heuristic, workspace sizing in
// cuda_backend.cu) must use exactly the tile sizes the kernels were compiled with, but should not
// pay for parsing CuTe. The kernel traits (fwd_traits_sm80.cuh) read their sizes from here, so the
// two can never disagree.
#pragma once

namespace flashplus {
namespace kernels {

struct TileShape {
  int block_m;    // query rows per tile
  int block_n;    // key rows per tile
  int num_warps;  // warps per CTA
};

// sm80 path (mma.sync m16n8k16). Up to d = 128, 4 warps each own 32 query rows; above that the
// accumulator (d fp32 values per row) no longer fits 4 warps' registers, so 8 warps own 16 rows each.
constexpr TileShape fwd_tile_shape_sm80(int head_dim) {
  return head_dim <= 128 ? TileShape{128, 64, 4} : TileShape{128, 64, 8};
}

// Dynamic shared memory of the sm80 forward: Q tile + one K and one V tile.
constexpr int fwd_smem_bytes_sm80(int head_dim, int element_size) {
  return (fwd_tile_shape_sm80(head_dim).block_m + 2 * fwd_tile_shape_sm80(head_dim).block_n) * head_dim * element_size;
}

// sm80 backward (both kernels): 64 x 64 tiles; warps as in bwd_traits_sm80.cuh.
constexpr TileShape bwd_tile_shape_sm80(int head_dim) {
  return head_dim <= 128 ? TileShape{64, 64, 4} : TileShape{64, 64, 8};
}

// Backward pipeline depth: double buffers up to d = 128; one buffer above, where two would exceed
// what sm80 allows.
constexpr int bwd_stages_sm80(int head_dim) { return head_dim <= 128 ? 2 : 1; }

// Key tiles per dK/dV CTA. Up to d = 128 a CTA runs two 4-warp groups, each owning one 64-key tile,
// over the same query tiles: the Q / dO tiles are loaded once for both, and the fused mode adds
// dQ into global memory once per 128 keys instead of once per 64 (its atomics were the bottleneck
// with one group: 2.1e9 fp32 atomic adds at d = 128, s = 4096, b = 4, h = 16). Above d = 128 one
// group of 8 warps already fills the register file.
constexpr int bwd_key_groups_sm80(int head_dim) { return head_dim <= 128 ? 2 : 1; }

// The larger of the two backward kernels (dK/dV): kStages x (Q, dO), per key group K, V, P and dS
// tiles, kStages x (LSE, D) rows. 162 KiB at d = 128 (one CTA of 8 warps per SM on sm80 / sm90).
constexpr int bwd_smem_bytes_sm80(int head_dim, int element_size) {
  return ((2 * bwd_stages_sm80(head_dim) + 2 * bwd_key_groups_sm80(head_dim)) * 64 * head_dim +
          2 * bwd_key_groups_sm80(head_dim) * 64 * 64) * element_size +
         bwd_stages_sm80(head_dim) * 2 * 64 * 4;
}

// Most splits of the key range one forward call makes (and most partials one combine launch
// reads). More would not help: a split needs at least one key tile of work.
constexpr int kMaxSplits = 32;

}  // namespace kernels
}  // namespace flashplus
