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
  // CTAs per SM the kernel is compiled for (__launch_bounds__'s minimum): registers per thread are
  // capped at what that many CTAs leave each thread (255 at one CTA of up to 8 warps).
  int min_ctas_per_sm = 1;
};

// sm80 path (mma.sync m16n8k16). Up to d = 128, 4 warps each own 32 query rows; above that the
// accumulator (d fp32 values per row) no longer fits 4 warps' registers, so 8 warps own 16 rows each.
//
// The decode tile: 16 query rows (one MMA row fragment) and four warps that split the keys. A
// decode step has 1..16 tile rows (s_q x the GQA group when packed), so a 128-row tile leaves 3 of
// its 4 warps idle and its 64 KiB of shared memory limit an SM to 3 CTAs. A one-warp CTA (36 KiB at
// d = 128, 6 per SM) was the first answer; run 14 showed it bound by its own instruction stream:
// one warp alone issued the Q load, every K/V copy, the MMAs and the epilogue, ~1.7 us per 64-key
// tile and ~10 us of fixed cost per CTA. Here the four warps share the loads (a quarter of the
// copies each) and each owns 16 of the tile's 64 keys with its own running max / sum / output,
// merged through shared memory once at the end (fwd_kernel_sm80.cuh). CTAs per SM: the shared
// memory of two K/V buffer pairs (fwd_kv_stages_sm80) leaves room for 3 at d = 128 (69 KiB each),
// which lets a thread have 168 registers (at 4 CTAs, 128, the main loop spilled ~250-290 bytes; at
// 168 the paged variant spills none, the strided one 96); 4 at
// d = 64 (125 registers, no spills); at d = 256 the output alone is 128 registers, so 2 CTAs.
constexpr TileShape fwd_tile_shape_sm80(int head_dim, bool decode_tile = false) {
  return decode_tile ? TileShape{16, 64, 4, head_dim <= 64 ? 4 : head_dim <= 128 ? 3 : 2}
                     : head_dim <= 128 ? TileShape{128, 64, 4} : TileShape{128, 64, 8};
}

// Warps of a forward tile that split its keys (each with its own softmax state): the decode tile's.
constexpr int fwd_key_split_warps_sm80(int head_dim, bool decode_tile) {
  return decode_tile ? fwd_tile_shape_sm80(head_dim, decode_tile).num_warps : 1;
}

// Whether a tile's 16-byte chunks split into whole rows per pass over the threads, so that each
// thread keeps one column (key_tile_loader_sm80.cuh). Not for d = 96 / 192 (12 / 24 chunks per row)
// over 128 or 256 threads.
constexpr bool fixed_column_loads(int head_dim, int num_threads) { return num_threads % (head_dim / 8) == 0; }

// Threads of an sm80 forward CTA that load Q, K and V. The big tile: all of them. The decode tile
// at d = 96 (12 chunks per row, which do not split over its 128 threads): 96 threads, 8 whole rows
// per pass, so that it too has the fixed-column strided and paged loaders (the general gather costs
// a 64-bit offset product per chunk); its fourth warp only computes. The decode tile is the one
// where that matters: a decode step is mostly loads.
constexpr int fwd_load_threads_sm80(int head_dim, bool decode_tile) {
  const int threads = fwd_tile_shape_sm80(head_dim, decode_tile).num_warps * 32;
  const int chunks_per_row = head_dim / 8;
  if (!decode_tile || fixed_column_loads(head_dim, threads)) return threads;
  return threads >= 8 * chunks_per_row ? 8 * chunks_per_row : threads;
}

// Which K/V layouts a forward variant's loader handles (a variant policy, variants.py):
//   kAny      every layout: strided, paged, and the element-wise gather (unaligned, d % 8 != 0);
//   kStrided  rows a fixed stride apart (dense, varlen), 16-byte aligned, fixed columns ("_strided");
//   kPaged    paged rows, 16-byte aligned, fixed columns ("_paged").
// The specialised loaders exist because the paths a variant does not take still cost its main
// loop registers, spills and compile time (key_tile_loader_sm80.cuh).
enum class KvLoad : int { kAny = 0, kStrided = 1, kPaged = 2 };

// Shared memory of the paged K/V row table (key_tile_loader_sm80.cuh): the 64-bit element offset
// of each key row of a tile, two tiles' worth. Only variants whose loader can read paged K/V have it.
constexpr int paged_table_bytes(int block_n) { return 2 * block_n * 8; }

// K/V buffer pairs of the sm80 forward. The big tile has one K and one V buffer: V streams in
// during S = Q K^T, the next K during softmax and P V, and its MMAs are long enough to hide both.
// The decode tile's MMAs are short (16 rows), so with one pair each 64-key tile cost two memory
// round trips in a row (K, then V once K had landed: 1.36 us per tile on H100, run 14). With two
// pairs the next tile's K and V are requested together while this one computes: one round trip
// per tile, overlapped. 68 KiB at d = 128 (3 CTAs per SM instead of 4, but twice the bytes in
// flight per CTA); at d = 256 a second pair (136 KiB) would leave one CTA per SM, so one.
constexpr int fwd_kv_stages_sm80(int head_dim, bool decode_tile) { return decode_tile && head_dim <= 128 ? 2 : 1; }

// Dynamic shared memory of the sm80 forward: Q tile + stages x (K tile, V tile) (+ the paged row
// table unless the variant's K/V loader is strided-only).
constexpr int fwd_smem_bytes_sm80(int head_dim, int element_size, bool decode_tile = false,
                                  KvLoad kv_load = KvLoad::kAny) {
  return (fwd_tile_shape_sm80(head_dim, decode_tile).block_m +
          2 * fwd_kv_stages_sm80(head_dim, decode_tile) * fwd_tile_shape_sm80(head_dim, decode_tile).block_n) *
             head_dim * element_size +
         (kv_load == KvLoad::kStrided ? 0 : paged_table_bytes(fwd_tile_shape_sm80(head_dim, decode_tile).block_n));
}

// CTAs of a kernel that fit on one SM at once: registers (kernels are built for up to 255 per
// thread, allocated per warp in units of 256), shared memory (each block also costs 1 KiB of
// reserved shared memory) and the resident-block limit (16 on the smallest sm80+ parts).
constexpr int ctas_per_sm(const TileShape& tile, int smem_bytes, int smem_per_sm) {
  const int threads = tile.num_warps * 32;
  const int registers_cap = 65536 / (threads * tile.min_ctas_per_sm);
  const int by_registers = 65536 / (threads * (registers_cap < 256 ? registers_cap : 256));
  const int by_smem = smem_per_sm / (smem_bytes + 1024);
  const int limit = by_registers < by_smem ? by_registers : by_smem;
  return limit < 1 ? 1 : limit > 16 ? 16 : limit;
}

// Which kernel generation a variant belongs to (variants.py PATHS). sm80: mma.sync + cp.async, runs
// on every GPU of compute capability >= 8.0. sm90: wgmma, built as sm_90a machine code, which runs
// on compute capability 9.0 only.
enum class KernelPath : int { kSm80 = 80, kSm90 = 90 };

// sm90 forward (wgmma): two warpgroups, each owning 64 query rows of a 128-row tile (wgmma's M is
// 64 per warpgroup), K/V double-buffered. d = 128: 128 keys per tile; S takes 64 fp32 registers
// per thread and O d / 2, so a bigger key tile halves the softmax's per-tile overhead at no cost in
// spills. d = 256: O alone holds 128 registers and two stages of 128-key K/V tiles would exceed
// the 227 KiB of shared memory a block may have, so 64 keys.
// d = 64: two CTAs per SM of 64-key tiles. A CTA's warpgroups share one barrier per step, so while
// a CTA waits at it or runs its softmax its tensor cores idle; at d = 64 the MMAs of a step are
// half as long as at d = 128 while that cost is the same, and with one CTA per SM (128-key tiles)
// the kernel ran at 0.92-1.02x of the sm80 one. A second CTA issues its MMAs in those gaps; it
// needs <= 128 registers per thread (S of 64 keys is 32, O 32) and 48 KiB of shared memory each.
constexpr TileShape fwd_tile_shape_sm90(int head_dim) {
  return head_dim <= 64 ? TileShape{128, 64, 8, 2} : TileShape{128, head_dim <= 128 ? 128 : 64, 8};
}

// K/V buffers of the sm90 forward: a CTA has stages - 1 key tiles' loads in flight while it computes
// (fwd_kernel_sm90.cuh). Three stages at d = 64 (two tiles ahead, 64 KiB per CTA, two CTAs still
// fit) measured slower than two at every shape (H100, run 14: s = 512 causal 134 -> 107 TFLOP/s,
// 1k -4%, 16k -2%), so every head dim has two. d = 128 (160 KiB) and d = 256 (192 KiB) have no room
// for a third anyway.
constexpr int kFwdStagesSm90 = 2;

// Q tile + stages x (K tile, V tile). 48 KiB at d = 64, 160 KiB at d = 128, 192 KiB at d = 256.
constexpr int fwd_smem_bytes_sm90(int head_dim, int element_size) {
  return (fwd_tile_shape_sm90(head_dim).block_m +
          2 * kFwdStagesSm90 * fwd_tile_shape_sm90(head_dim).block_n) *
         head_dim * element_size;
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

// sm90 backward (wgmma, fused dQ only). Up to d = 128: one CTA per 128 keys, two warpgroups of 64
// keys each, over query tiles of 64 rows (128 at d = 64). The transposed products S^T = K Q^T and
// dP^T = V dO^T put a key's values in one warpgroup's registers, so P^T and dS^T feed
// dV += P^T dO and dK += dS^T Q as register A operands (no shared-memory round trip); only dS goes
// to shared memory, for dQ = dS K.
// Registers at d = 128: dK, dV 64 each, S^T, dP^T 32 each, dQ 32 (d / 2 features per warpgroup).
// At d = 64 the products are half as long, so a step's fixed costs (two barriers, the row
// statistics, the loads' issue) weigh twice as much: 128 query rows per step there, which the
// halved dK / dV accumulators leave registers for (S^T and dP^T then take 64 each).
// Above d = 128 dK and dV of 64 keys would take 256 registers of one warpgroup, so the two
// warpgroups split the features instead (bwd_traits_sm90.cuh, kSplitFeatures): one CTA per 64 keys,
// each warpgroup computes S^T and dP^T for half of the 64 query columns, P^T and dS^T go through
// shared memory, and each warpgroup accumulates dK and dV (64 registers each) and dQ (64) for half
// of the features.
constexpr bool bwd_split_features_sm90(int head_dim) { return head_dim > 128; }

constexpr TileShape bwd_tile_shape_sm90(int head_dim) {
  return TileShape{head_dim <= 64 ? 128 : 64, bwd_split_features_sm90(head_dim) ? 64 : 128, 8};
}

constexpr int kBwdStagesSm90 = 2;

// K, V (block_n x d), kBwdStagesSm90 x (Q, dO) (block_m x d), dS^T (and P^T when the features are
// split: block_n x block_m), kBwdStagesSm90 x (LSE, D) rows. 145 KiB at d = 128, 130 KiB at d = 64,
// 209 KiB at d = 256.
constexpr int bwd_smem_bytes_sm90(int head_dim, int element_size) {
  return (2 * bwd_tile_shape_sm90(head_dim).block_n * head_dim +
          2 * kBwdStagesSm90 * bwd_tile_shape_sm90(head_dim).block_m * head_dim +
          (bwd_split_features_sm90(head_dim) ? 2 : 1) * bwd_tile_shape_sm90(head_dim).block_n *
              bwd_tile_shape_sm90(head_dim).block_m) * element_size +
         kBwdStagesSm90 * 2 * bwd_tile_shape_sm90(head_dim).block_m * 4;
}

// Most partials one launch of the C ABI's combine (combine_kernel.cuh) reads; more are merged in
// chunks.
constexpr int kMaxSplits = 32;

// Most splits of the key range one forward call makes (split_combine_kernel.cuh merges them).
// Decode at batch 1 needs about this many: 4 K/V heads x 128 splits are what keeps enough K/V
// loads in flight to read a long context at full bandwidth (measured with one-warp CTAs).
constexpr int kMaxSplitsKv = 128;

}  // namespace kernels
}  // namespace flashplus
