// split_heuristic.h — how many splits of the key range a forward call gets when the caller passes
// num_splits = 0 (flash-attn's "choose for me"). A pure function of the grid and the GPU's size,
// without CUDA or CuTe, so the host tests (tests/cpp/test_split_heuristic.cpp) check it on machines
// without a GPU.
//
// Split-KV when the grid would leave the GPU idle (decode, small batch).
//
// Decode tile (at most 16 tile rows): it keeps the next key tile's K and V in flight
// (tile_shape.h fwd_kv_stages_sm80), so about two CTAs per SM read at full bandwidth; more splits
// than that only add CTAs whose fixed cost (prologue, partial store) and combine input outweigh
// what they read. So: about 2 CTAs per SM, each split at least kMinTilesPerDecodeSplit key tiles.
// Chosen from H100 run 15's timings of every split count (tools/decode_splits.py, graph replays,
// 32 q / 4 kv heads, d = 128): this rule picks the fastest count measured at b = 1, 8k (32 splits,
// 23.5 us; filling the 3 slots per SM picked 55, 25.2), b = 4, 8k (16: 43.3 against 44.7) and
// b = 16, 8k (4: 108.8 against 113.0), and none at b = 64 (360 us; 3 splits took 376).
//
// Other tiles: a slot is one resident CTA (ctas_per_sm); picks the smallest split count whose
// wave efficiency is within 85% of the best, each split keeping at least two key tiles.
//
// Both: short key ranges run unsplit. The partial workspace (allocation nodes in a graph) and the
// combine launch cost about 3-4 us at b = 1, which a split repays only once the key tiles it takes
// off one CTA cost more than that; a paged key tile costs about twice a contiguous one (its row
// table, one more dependent load), so paged calls split from fewer tiles. H100 run 16, b = 1,
// GQA 8:1, d = 128, graph replays, us, unsplit against the best split count:
//   contiguous: 2 tiles 11.3 / 14.7, 4 tiles 12.8 / 14.9, 5 tiles 13.7 / 15.4, 8 tiles 16.1 / 16.1,
//               16 tiles 21.9 / 16.4;
//   paged:      2 tiles 12.4 / 13.4, 4 tiles 15.1 / 14.0, 5 tiles 16.6 / 14.4, 8 tiles 21.1 / 15.6.
// Short contexts (at most kOneTileSplitMaxBlocks key tiles) whose one-tile splits all fit
// in one wave get one tile per split: such a call is pure latency, and a CTA's second tile costs
// about as much as the whole first one (H100 run 14, b = 1, 1k context, GQA 8:1: 27 us with 8
// splits, 22 us with 16).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tile_shape.h"

namespace flashplus {
namespace kernels {

constexpr int kMinKeyTilesToSplitContiguous = 9;
constexpr int kMinKeyTilesToSplitPaged = 4;
constexpr int kOneTileSplitMaxBlocks = 16;
constexpr int kMinTilesPerDecodeSplit = 4;
constexpr int kDecodeCtasPerSm = 2;

struct SplitGrid {
  int64_t ctas = 1;          // CTAs of one split: query tiles x batch x (packed) heads
  int key_tiles = 1;         // key tiles of the longest sequence (>= 1)
  int sms = 1;               // multiprocessors of the device
  int slots = 1;             // CTAs of this kernel resident at once on the whole device (>= sms)
  bool decode_tile = false;  // the 16-row decode tile (tile_shape.h)
  bool paged_kv = false;     // K / V through a block table
};

// requested >= 1: the caller's count, clamped to [1, min(kMaxSplitsKv, key tiles)]; else chosen.
inline int choose_splits(const SplitGrid& g, int requested) {
  const int limit = std::min(kMaxSplitsKv, g.key_tiles);
  if (requested >= 1) return std::max(1, std::min(requested, limit));
  if (g.ctas >= static_cast<int64_t>(g.slots) * 4 / 5) return 1;
  if (g.key_tiles < (g.paged_kv ? kMinKeyTilesToSplitPaged : kMinKeyTilesToSplitContiguous)) return 1;
  if (g.key_tiles <= kOneTileSplitMaxBlocks && g.ctas * g.key_tiles <= g.slots) return limit;
  if (g.decode_tile) {
    const int64_t by_ctas = std::max<int64_t>(1, static_cast<int64_t>(kDecodeCtasPerSm) * g.sms / g.ctas);
    const int64_t by_tiles = std::max(1, g.key_tiles / kMinTilesPerDecodeSplit);
    return static_cast<int>(std::min({by_ctas, by_tiles, static_cast<int64_t>(limit)}));
  }
  const int max_splits = std::min(limit, std::max(1, g.key_tiles / 2));
  double best_efficiency = 0.0;
  double efficiency[kMaxSplitsKv + 1] = {};
  for (int s = 1; s <= max_splits; ++s) {
    const double waves = static_cast<double>(g.ctas * s) / g.slots;
    efficiency[s] = waves / std::ceil(waves);
    best_efficiency = std::max(best_efficiency, efficiency[s]);
  }
  for (int s = 1; s <= max_splits; ++s)
    if (efficiency[s] >= 0.85 * best_efficiency) return s;
  return 1;
}

}  // namespace kernels
}  // namespace flashplus
