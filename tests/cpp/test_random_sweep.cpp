// Randomised sweeps over every feature combination: each seed draws a whole configuration
// (layout, lengths including empty ones, GQA ratio, head dim, masks, softcap, ALiBi, dropout,
// paging, seqused / leftpad, splits) and checks it against the oracle. The hand-written suites
// cover each feature; these cover the interactions nobody thought to write down.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "support/bwd_case.h"
#include "support/fwd_case.h"
#include "support/kvcache_case.h"

namespace {

using fptest::Alibi;
using fptest::AttentionConfig;
using fptest::Rng;

int pick(Rng& rng, int low, int high) {  // uniform in [low, high]
  return std::uniform_int_distribution<int>(low, high)(rng);
}
bool chance(Rng& rng, double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }
template <typename T>
T one_of(Rng& rng, std::initializer_list<T> values) {
  return *(values.begin() + pick(rng, 0, static_cast<int>(values.size()) - 1));
}

void draw_common(AttentionConfig& c, Rng& rng) {
  c.dtype = one_of(rng, {FLASHPLUS_DTYPE_FLOAT32, FLASHPLUS_DTYPE_FLOAT16, FLASHPLUS_DTYPE_BFLOAT16});
  c.h_k = pick(rng, 1, 3);
  c.h_q = c.h_k * pick(rng, 1, 3);
  c.head_dim = one_of<int64_t>(rng, {1, 8, 16, 40, 64, 72, 96, 128, 200, 256});
  const int mask = pick(rng, 0, 2);
  if (mask == 1) c.causal = true;
  if (mask >= 1 && chance(rng, 0.6)) {
    c.window_left = pick(rng, -1, 12);
    if (!c.causal) c.window_right = pick(rng, -1, 12);
  }
  if (chance(rng, 0.25)) {
    c.softcap = std::uniform_real_distribution<float>(0.5f, 5.f)(rng);
    c.softmax_scale = std::uniform_real_distribution<float>(0.2f, 1.f)(rng);
  }
  c.alibi = one_of(rng, {Alibi::kNone, Alibi::kNone, Alibi::kPerHead, Alibi::kPerBatchHead});
  if (chance(rng, 0.3)) c.dropout_p = std::uniform_real_distribution<float>(0.05f, 0.8f)(rng);
}

AttentionConfig random_fwd_config(uint64_t seed) {
  Rng rng(seed * 7919 + 1);
  AttentionConfig c;
  c.data_seed = seed;
  c.philox_seed = rng();
  c.philox_offset = rng();
  draw_common(c, rng);
  const bool varlen = chance(rng, 0.5);
  const int batch = pick(rng, 1, 4);
  c.batch = batch;
  if (chance(rng, 0.3)) c.page_size = one_of<int64_t>(rng, {1, 2, 3, 5, 8, 16});
  std::vector<int32_t> key_lengths;
  if (varlen) {
    for (int b = 0; b < batch; ++b) {
      c.seqlens_q.push_back(pick(rng, 0, 30));
      c.seqlens_k.push_back(pick(rng, 0, 30));
    }
    key_lengths = c.seqlens_k;
  } else {
    c.s_q = pick(rng, 1, 40);
    c.s_k = pick(rng, 1, 40);
    int64_t length = c.s_k;
    if (c.page_size) length = (c.s_k + c.page_size - 1) / c.page_size * c.page_size;
    key_lengths.assign(batch, static_cast<int32_t>(length));
  }
  std::vector<int32_t> ends = key_lengths;
  if (chance(rng, 0.3)) {
    for (int b = 0; b < batch; ++b) ends[b] = pick(rng, 0, key_lengths[b]);
    c.seqused_k = ends;
  }
  if (chance(rng, 0.3)) {
    for (int b = 0; b < batch; ++b) c.leftpad_k.push_back(pick(rng, 0, ends[b]));
  }
  c.with_s_dmask = chance(rng, c.dropout_p > 0 ? 0.7 : 0.2);
  c.s_dmask_dtype = chance(rng, 0.5) ? FLASHPLUS_DTYPE_FLOAT32 : c.dtype;
  c.num_splits = pick(rng, 0, 3);
  c.label = "seed" + std::to_string(seed) + "_" + c.name();
  return c;
}

AttentionConfig random_bwd_config(uint64_t seed) {
  Rng rng(seed * 104729 + 3);
  AttentionConfig c;
  c.data_seed = seed + 1000;
  c.philox_seed = rng();
  c.philox_offset = rng();
  draw_common(c, rng);
  const int batch = pick(rng, 1, 3);
  c.batch = batch;
  if (chance(rng, 0.5)) {
    for (int b = 0; b < batch; ++b) {
      c.seqlens_q.push_back(pick(rng, 0, 25));
      c.seqlens_k.push_back(pick(rng, 0, 25));
    }
  } else {
    c.s_q = pick(rng, 1, 30);
    c.s_k = pick(rng, 1, 30);
  }
  c.deterministic = chance(rng, 0.5);
  c.label = "seed" + std::to_string(seed) + "_" + c.name();
  return c;
}

fptest::KvcacheConfig random_kvcache_config(uint64_t seed) {
  Rng rng(seed * 15485863 + 5);
  fptest::KvcacheConfig c;
  c.data_seed = seed + 2000;
  c.dtype = one_of(rng, {FLASHPLUS_DTYPE_FLOAT32, FLASHPLUS_DTYPE_FLOAT16, FLASHPLUS_DTYPE_BFLOAT16});
  c.batch = pick(rng, 1, 3);
  c.s_q = pick(rng, 1, 6);
  c.h_k = pick(rng, 1, 3);
  c.h_q = c.h_k * pick(rng, 1, 3);
  c.head_dim = one_of<int64_t>(rng, {8, 16, 40, 64, 72, 128, 256});
  c.capacity = pick(rng, 4, 40);
  if (chance(rng, 0.3)) {
    c.page_size = one_of<int64_t>(rng, {1, 2, 4, 7, 16});
    c.capacity = (c.capacity + c.page_size - 1) / c.page_size * c.page_size;
  } else if (chance(rng, 0.4)) {
    c.cache_batch = c.batch + pick(rng, 0, 2);
    std::vector<int32_t> entries(c.cache_batch);
    std::iota(entries.begin(), entries.end(), 0);
    std::shuffle(entries.begin(), entries.end(), rng);
    c.cache_batch_idx.assign(entries.begin(), entries.begin() + c.batch);
  }
  const bool has_seqlens = chance(rng, 0.9);
  if (has_seqlens) {
    if (chance(rng, 0.6)) c.s_new = pick(rng, 1, std::min<int>(5, static_cast<int>(c.capacity)));
    for (int64_t b = 0; b < c.batch; ++b)
      c.cache_seqlens.push_back(pick(rng, 0, static_cast<int>(c.capacity - c.s_new)));
    if (chance(rng, 0.3))
      for (int64_t b = 0; b < c.batch; ++b) c.cache_leftpad.push_back(pick(rng, 0, c.cache_seqlens[b]));
    if (chance(rng, 0.4)) {
      c.rotary_dim = 2 * pick(rng, 1, static_cast<int>(c.head_dim / 2));
      c.rotary_interleaved = chance(rng, 0.5);
    }
  }
  const int mask = pick(rng, 0, 2);
  if (mask == 1) c.causal = true;
  if (mask == 2) {
    // A window narrower than the cache, so "windowed" is unambiguous for rotary positions.
    c.window_left = pick(rng, 0, 8);
    c.window_right = pick(rng, -1, 3);
  }
  if (chance(rng, 0.25)) c.softcap = std::uniform_real_distribution<float>(0.5f, 5.f)(rng);
  c.alibi = one_of(rng, {Alibi::kNone, Alibi::kNone, Alibi::kPerHead, Alibi::kPerBatchHead});
  c.num_splits = pick(rng, 0, 4);
  c.with_lse = chance(rng, 0.8);
  c.label = "seed" + std::to_string(seed) + "_" + c.name();
  return c;
}

template <typename Config, Config (*draw)(uint64_t)>
std::vector<Config> draws(int count) {
  std::vector<Config> list;
  for (int seed = 0; seed < count; ++seed) list.push_back(draw(seed));
  return list;
}

class RandomFwd : public ::testing::TestWithParam<AttentionConfig> {};
TEST_P(RandomFwd, MatchesOracle) {
  fptest::FwdCase c = fptest::make_fwd_case(GetParam());
  fptest::check_fwd(c.args);
}
INSTANTIATE_TEST_SUITE_P(Sweep, RandomFwd,
                         ::testing::ValuesIn(draws<AttentionConfig, random_fwd_config>(150)),
                         fptest::ConfigName());

class RandomBwd : public ::testing::TestWithParam<AttentionConfig> {};
TEST_P(RandomBwd, MatchesOracle) {
  fptest::BwdCase c = fptest::make_bwd_case(GetParam());
  fptest::check_bwd(c.args);
}
INSTANTIATE_TEST_SUITE_P(Sweep, RandomBwd,
                         ::testing::ValuesIn(draws<AttentionConfig, random_bwd_config>(100)),
                         fptest::ConfigName());

class RandomKvcache : public ::testing::TestWithParam<fptest::KvcacheConfig> {};
TEST_P(RandomKvcache, MatchesOracle) {
  fptest::KvcacheCase c = fptest::make_kvcache_case(GetParam());
  fptest::check_kvcache(c.args);
}
INSTANTIATE_TEST_SUITE_P(
    Sweep, RandomKvcache,
    ::testing::ValuesIn(draws<fptest::KvcacheConfig, random_kvcache_config>(100)),
    [](const ::testing::TestParamInfo<fptest::KvcacheConfig>& info) { return info.param.label; });

}  // namespace
