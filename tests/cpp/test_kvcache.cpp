// flashplus_fwd_kvcache against the oracle: decode and chunked prefill, in-place append of k_new /
// v_new, rotary (interleaved and NeoX, causal and not), cache_batch_idx, cache_leftpad, paged
// caches, GQA, ALiBi, softcap, windows, num_splits, optional LSE, all dtypes.
#include <gtest/gtest.h>

#include "support/kvcache_case.h"

namespace {

using fptest::Alibi;
using fptest::KvcacheConfig;

std::vector<KvcacheConfig> kvcache_configs() {
  std::vector<KvcacheConfig> list;
  for (flashplus_dtype dtype :
       {FLASHPLUS_DTYPE_FLOAT32, FLASHPLUS_DTYPE_FLOAT16, FLASHPLUS_DTYPE_BFLOAT16}) {
    KvcacheConfig decode;
    decode.dtype = dtype;
    decode.cache_seqlens = {5, 24};
    list.push_back(decode);

    KvcacheConfig append = decode;
    append.cache_seqlens = {5, 23};
    append.s_new = 1;
    append.causal = true;
    list.push_back(append);

    KvcacheConfig prefill = decode;
    prefill.s_q = 4;
    prefill.s_new = 4;
    prefill.cache_seqlens = {0, 12};
    prefill.causal = true;
    prefill.rotary_dim = 16;
    list.push_back(prefill);
  }

  // Rotary layouts and query positions (causal: row r at c + r; otherwise every row at c).
  for (bool interleaved : {false, true})
    for (bool causal : {false, true}) {
      KvcacheConfig c;
      c.s_q = 3;
      c.s_new = 3;
      c.cache_seqlens = {7, 2};
      c.rotary_dim = 24;
      c.rotary_interleaved = interleaved;
      c.causal = causal;
      list.push_back(c);
    }
  KvcacheConfig full_rotary;  // rotary over every feature, windowed (so rows use c + r)
  full_rotary.head_dim = 40;
  full_rotary.rotary_dim = 40;
  full_rotary.s_q = 2;
  full_rotary.s_new = 2;
  full_rotary.cache_seqlens = {10, 3};
  full_rotary.window_left = 4;
  full_rotary.window_right = 0;
  list.push_back(full_rotary);

  // cache_batch_idx picks cache entries out of a larger cache.
  KvcacheConfig batch_idx;
  batch_idx.batch = 3;
  batch_idx.cache_batch = 5;
  batch_idx.cache_batch_idx = {3, 0, 4};
  batch_idx.cache_seqlens = {6, 11, 0};
  batch_idx.s_new = 2;
  batch_idx.rotary_dim = 8;
  list.push_back(batch_idx);

  // cache_leftpad: valid rows start at leftpad; rotary positions stay absolute.
  KvcacheConfig leftpad;
  leftpad.cache_seqlens = {10, 7};
  leftpad.cache_leftpad = {4, 0};
  leftpad.s_q = 2;
  leftpad.s_new = 2;
  leftpad.causal = true;
  leftpad.rotary_dim = 16;
  leftpad.rotary_interleaved = true;
  list.push_back(leftpad);
  KvcacheConfig leftpad_all = leftpad;  // leftpad == c: only the new rows are visible
  leftpad_all.cache_leftpad = {10, 7};
  leftpad_all.rotary_dim = 0;
  leftpad_all.alibi = Alibi::kPerHead;
  list.push_back(leftpad_all);

  // Paged caches with appends that cross page boundaries.
  for (int64_t page_size : {1, 4, 16}) {
    KvcacheConfig paged;
    paged.page_size = page_size;
    paged.capacity = 32;
    paged.cache_seqlens = {3, 15};
    paged.s_q = 3;
    paged.s_new = 3;
    paged.causal = true;
    paged.rotary_dim = page_size == 4 ? 16 : 0;
    list.push_back(paged);
  }

  // Paged with leftpad: rows stay absolute (row r in page table[r / page_size]).
  KvcacheConfig paged_leftpad;
  paged_leftpad.page_size = 4;
  paged_leftpad.capacity = 16;
  paged_leftpad.cache_seqlens = {9, 6};
  paged_leftpad.cache_leftpad = {5, 2};
  paged_leftpad.s_q = 2;
  paged_leftpad.s_new = 2;
  paged_leftpad.causal = true;
  paged_leftpad.rotary_dim = 8;
  list.push_back(paged_leftpad);

  // GQA ratios, modifiers, long cache with split-KV.
  for (int64_t h_k : {6, 3, 2, 1}) {
    KvcacheConfig c;
    c.h_q = 6;
    c.h_k = h_k;
    c.capacity = 40;
    c.cache_seqlens = {33, 17};
    c.s_new = 1;
    c.alibi = h_k == 2 ? Alibi::kPerBatchHead : Alibi::kNone;
    c.softcap = h_k == 3 ? 1.5f : 0.f;
    list.push_back(c);
  }
  for (int32_t splits : {1, 2, 3, 8}) {
    KvcacheConfig c;
    c.capacity = 113;
    c.cache_seqlens = {113, 60};
    c.num_splits = splits;
    c.head_dim = 72;
    c.dtype = splits == 3 ? FLASHPLUS_DTYPE_FLOAT32 : FLASHPLUS_DTYPE_FLOAT16;
    list.push_back(c);
  }
  KvcacheConfig splits_paged;
  splits_paged.capacity = 64;
  splits_paged.page_size = 8;
  splits_paged.cache_seqlens = {50, 63};
  splits_paged.s_new = 1;
  splits_paged.num_splits = 4;
  splits_paged.causal = true;
  list.push_back(splits_paged);

  // No cache_seqlens: the whole cache is valid. Without an LSE output. Windows.
  KvcacheConfig full;
  full.capacity = 17;
  full.s_q = 5;
  full.causal = true;
  list.push_back(full);
  KvcacheConfig no_lse;
  no_lse.cache_seqlens = {9, 1};
  no_lse.s_q = 2;
  no_lse.with_lse = false;
  list.push_back(no_lse);
  KvcacheConfig window;
  window.cache_seqlens = {20, 4};
  window.s_q = 4;
  window.s_new = 4;
  window.window_left = 3;
  window.window_right = 1;
  window.head_dim = 200;
  list.push_back(window);
  KvcacheConfig exact_fill;  // c + s_new == capacity
  exact_fill.capacity = 12;
  exact_fill.cache_seqlens = {9, 0};
  exact_fill.s_q = 3;
  exact_fill.s_new = 3;
  exact_fill.dtype = FLASHPLUS_DTYPE_BFLOAT16;
  exact_fill.head_dim = 256;
  exact_fill.rotary_dim = 32;
  exact_fill.causal = true;
  list.push_back(exact_fill);
  KvcacheConfig empty_rows;  // q rows see nothing: c = 0, no new keys
  empty_rows.cache_seqlens = {0, 4};
  empty_rows.s_q = 2;
  list.push_back(empty_rows);
  return list;
}

class Kvcache : public ::testing::TestWithParam<KvcacheConfig> {};

TEST_P(Kvcache, MatchesOracle) {
  fptest::KvcacheCase c = fptest::make_kvcache_case(GetParam());
  fptest::check_kvcache(c.args);
}

struct KvcacheName {
  std::string operator()(const ::testing::TestParamInfo<KvcacheConfig>& info) const {
    return info.param.name();
  }
};

INSTANTIATE_TEST_SUITE_P(Configs, Kvcache, ::testing::ValuesIn(kvcache_configs()), KvcacheName());

TEST(KvcacheExtra, SplitsDoNotChangeTheAnswerBeyondRounding) {
  // The same decode with 1 and with 4 splits: both match the oracle, and each other closely.
  KvcacheConfig c;
  c.dtype = FLASHPLUS_DTYPE_FLOAT32;
  c.capacity = 97;
  c.cache_seqlens = {97, 50};
  c.num_splits = 1;
  fptest::KvcacheCase one = fptest::make_kvcache_case(c);
  ASSERT_EQ(flashplus_fwd_kvcache(&one.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();
  c.num_splits = 4;
  fptest::KvcacheCase four = fptest::make_kvcache_case(c);
  ASSERT_EQ(flashplus_fwd_kvcache(&four.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();
  const fptest::RefArray a = one.out.values(), b = four.out.values();
  for (int64_t n = 0; n < a.numel(); ++n) ASSERT_NEAR(a.values[n], b.values[n], 1e-5) << n;
}

TEST(KvcacheExtra, SuccessiveDecodeStepsGrowTheCache) {
  // Three decode steps appending one token each, each checked in full against the oracle.
  KvcacheConfig c;
  c.capacity = 10;
  c.cache_seqlens = {2, 6};
  c.s_new = 1;
  c.causal = true;
  c.rotary_dim = 8;
  fptest::KvcacheCase run = fptest::make_kvcache_case(c);
  fptest::Rng rng(99);
  for (int step = 0; step < 3; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    fptest::check_kvcache(run.args);
    for (int64_t i = 0; i < c.batch; ++i)
      run.cache_seqlens.set({i}, run.cache_seqlens.get({i}) + 1);
    run.q.fill_normal(rng);
    run.k_new.fill_normal(rng);
    run.v_new.fill_normal(rng);
  }
}

}  // namespace
