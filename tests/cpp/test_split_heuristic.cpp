// The split-KV count chosen for num_splits = 0 (kernels/split_heuristic.h), on the grids that
// H100 run 15 timed at every split count (kernels/NOTES.md, tools/decode_splits.py): decode with
// 32 query / 4 KV heads at d = 128 (decode tile: 3 resident CTAs per SM, 132 SMs). The expected
// counts are the fastest ones measured there, so a change of the rule that would pick a measured-
// slower count fails here. The other rules are checked by their properties.
#include <gtest/gtest.h>

#include <cmath>

#include "split_heuristic.h"

namespace {

using flashplus::kernels::choose_splits;
using flashplus::kernels::kMaxSplitsKv;
using flashplus::kernels::SplitGrid;

constexpr int kH100Sms = 132;

SplitGrid h100_decode(int batch, int context, bool paged = false) {
  SplitGrid g;
  g.paged_kv = paged;
  g.ctas = static_cast<int64_t>(batch) * 4;  // one packed tile per (batch, KV head)
  g.key_tiles = (context + 63) / 64;
  g.sms = kH100Sms;
  g.slots = 3 * kH100Sms;
  g.decode_tile = true;
  return g;
}

TEST(SplitHeuristic, DecodePicksRun15FastestCounts) {
  EXPECT_EQ(choose_splits(h100_decode(1, 8192), 0), 32);   // 23.5 us; 64 splits 25.9, 16 24.2
  EXPECT_EQ(choose_splits(h100_decode(4, 8192), 0), 16);   // 43.3 us; 8 45.6, 32 47.9
  EXPECT_EQ(choose_splits(h100_decode(16, 8192), 0), 4);   // 108.8 us; 2 110.2, 8 116.9
  EXPECT_EQ(choose_splits(h100_decode(64, 8192), 0), 1);   // 353.9 us; 2 372.6
  EXPECT_EQ(choose_splits(h100_decode(64, 1024), 0), 1);   // 62.0 us; 2 70.4
  EXPECT_EQ(choose_splits(h100_decode(1, 1024), 0), 16);   // one key tile per split: 15.8 us; 8 17.2
}

TEST(SplitHeuristic, FewKeyTilesRunUnsplit) {
  // H100 run 16 (graph replays, b = 1, us, unsplit / best split): contiguous 128 keys 11.3 / 14.7,
  // 320 keys 13.7 / 15.4, 512 keys 16.1 / 16.1, 1k 21.9 / 16.4; paged 128 keys 12.4 / 13.4, 256
  // keys 15.1 / 14.0, 512 keys 21.1 / 15.6.
  for (int context : {64, 128, 256, 320, 512}) EXPECT_EQ(choose_splits(h100_decode(1, context), 0), 1) << context;
  EXPECT_GT(choose_splits(h100_decode(1, 1024), 0), 1);
  for (int context : {64, 128, 192}) EXPECT_EQ(choose_splits(h100_decode(1, context, true), 0), 1) << context;
  for (int context : {256, 320, 512}) EXPECT_GT(choose_splits(h100_decode(1, context, true), 0), 1) << context;
  SplitGrid big_tile;  // the 128-row tile too
  big_tile.ctas = 2;
  big_tile.key_tiles = flashplus::kernels::kMinKeyTilesToSplitContiguous - 1;
  big_tile.sms = kH100Sms;
  big_tile.slots = 2 * kH100Sms;
  EXPECT_EQ(choose_splits(big_tile, 0), 1);
  EXPECT_EQ(choose_splits(big_tile, 3), 3);  // a requested count still applies
  big_tile.paged_kv = true;
  EXPECT_GT(choose_splits(big_tile, 0), 1);
}

TEST(SplitHeuristic, DecodeSplitsKeepFourKeyTilesAndAboutTwoCtasPerSm) {
  for (int batch : {1, 2, 3, 5, 8, 16, 33}) {
    for (int context : {1100, 4096, 8192, 32768, 131072}) {
      const SplitGrid g = h100_decode(batch, context);
      const int s = choose_splits(g, 0);
      ASSERT_GE(s, 1);
      ASSERT_LE(s, kMaxSplitsKv);
      if (g.key_tiles > flashplus::kernels::kOneTileSplitMaxBlocks) {
        EXPECT_GE(g.key_tiles / s, flashplus::kernels::kMinTilesPerDecodeSplit) << batch << " x " << context;
        EXPECT_LE(g.ctas * s, 2 * kH100Sms) << batch << " x " << context;
      }
    }
  }
}

TEST(SplitHeuristic, RequestedCountIsClamped) {
  const SplitGrid g = h100_decode(2, 8192);  // 128 key tiles
  EXPECT_EQ(choose_splits(g, 3), 3);
  EXPECT_EQ(choose_splits(g, 500), 128);
  SplitGrid short_context = h100_decode(2, 100);  // 2 key tiles
  EXPECT_EQ(choose_splits(short_context, 7), 2);
  SplitGrid huge = h100_decode(1, 1 << 20);
  EXPECT_EQ(choose_splits(huge, 100000), kMaxSplitsKv);
}

TEST(SplitHeuristic, FullGridRunsUnsplit) {
  SplitGrid g;
  g.sms = kH100Sms;
  g.slots = 2 * kH100Sms;
  g.key_tiles = 256;
  g.ctas = g.slots;  // one wave already
  EXPECT_EQ(choose_splits(g, 0), 1);
  g.decode_tile = true;
  g.slots = 3 * kH100Sms;
  g.ctas = 3 * kH100Sms / 2 + 1;  // decode: >= 1.5 CTAs per SM read at full bandwidth unsplit
  EXPECT_EQ(choose_splits(g, 0), 1);
}

TEST(SplitHeuristic, BigTileFillsWavesWithTwoKeyTilesPerSplit) {
  // The 128-row tile (prefill at small batch): the smallest count whose wave efficiency is
  // within 85% of the best, each split keeping at least two key tiles.
  for (int64_t ctas : {3, 8, 40, 100, 150}) {
    for (int key_tiles : {17, 64, 300}) {
      SplitGrid g;
      g.ctas = ctas;
      g.key_tiles = key_tiles;
      g.sms = kH100Sms;
      g.slots = 2 * kH100Sms;
      const int s = choose_splits(g, 0);
      ASSERT_GE(s, 1);
      EXPECT_LE(s, std::max(1, key_tiles / 2)) << ctas << " CTAs, " << key_tiles << " tiles";
      auto efficiency = [&](int splits) {
        const double waves = static_cast<double>(ctas * splits) / g.slots;
        return waves / std::ceil(waves);
      };
      double best = 0.0;
      for (int t = 1; t <= std::min(kMaxSplitsKv, std::max(1, key_tiles / 2)); ++t) best = std::max(best, efficiency(t));
      EXPECT_GE(efficiency(s), 0.85 * best) << ctas << " CTAs, " << key_tiles << " tiles";
      for (int t = 1; t < s; ++t) EXPECT_LT(efficiency(t), 0.85 * best) << "a smaller count was good enough";
    }
  }
}

TEST(SplitHeuristic, ShortContextGetsOneKeyTilePerSplit) {
  SplitGrid g;
  g.ctas = 8;
  g.key_tiles = 12;
  g.sms = kH100Sms;
  g.slots = 2 * kH100Sms;
  EXPECT_EQ(choose_splits(g, 0), 12);
  g.ctas = 40;  // 40 x 12 one-tile splits would not fit in one wave
  EXPECT_LT(choose_splits(g, 0), 12);
}

}  // namespace
