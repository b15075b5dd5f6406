// flashplus_fwd_kvcache refuses every malformed request with a message naming the argument.
#include <gtest/gtest.h>

#include "support/kvcache_case.h"
#include "support/rejection.h"
#include "support/validation_rule.h"

namespace {

using fptest::HostTensor;

enum Base { kPlain, kBatchIdx, kPaged };

using KvFixture = fptest::CaseFixture<fptest::KvcacheCase>;

// b 2, s_q 2, h 4 / 2, d 8, capacity 12, cache_seqlens {3, 5}, two new rows, rotary_dim 4.
KvFixture make_fixture(int base) {
  fptest::KvcacheConfig cfg;
  cfg.batch = 2;
  cfg.s_q = 2;
  cfg.h_q = 4;
  cfg.h_k = 2;
  cfg.head_dim = 8;
  cfg.capacity = 12;
  cfg.cache_seqlens = {3, 5};
  cfg.s_new = 2;
  cfg.rotary_dim = 4;
  cfg.causal = true;
  cfg.alibi = fptest::Alibi::kPerHead;
  if (base == kBatchIdx) {
    cfg.cache_batch = 3;
    cfg.cache_batch_idx = {2, 0};
  }
  if (base == kPaged) cfg.page_size = 4;  // 3 pages per sequence, 8 in the pool
  return KvFixture{fptest::make_kvcache_case(cfg), {}};
}

using KvRule = fptest::Rule<KvFixture>;

KvRule rule(std::string label, std::function<void(KvFixture&)> mutate,
            std::vector<std::string> names, int base = kPlain) {
  return fptest::make_rule<KvFixture>(std::move(label), std::move(mutate), std::move(names), base);
}

flashplus_tensor& field(flashplus_kvcache_args& a, const std::string& name) {
  if (name == "q") return a.q;
  if (name == "k_cache") return a.k_cache;
  if (name == "v_cache") return a.v_cache;
  if (name == "k_new") return a.k_new;
  if (name == "v_new") return a.v_new;
  if (name == "rotary_cos") return a.rotary_cos;
  if (name == "rotary_sin") return a.rotary_sin;
  if (name == "softmax_lse") return a.softmax_lse;
  return a.out;
}

std::vector<KvRule> kvcache_rules() {
  std::vector<KvRule> r;
  r.push_back(rule("struct_size_zero", [](KvFixture& f) { f.a().struct_size = 0; }, {"struct_size"}));
  r.push_back(rule("struct_size_too_small",
                   [](KvFixture& f) { f.a().struct_size = sizeof(flashplus_kvcache_args) - 8; },
                   {"struct_size"}));
  for (std::string name : {"q", "k_cache", "v_cache", "out"})
    r.push_back(rule(name + "_missing", [name](KvFixture& f) { field(f.a(), name).data = nullptr; },
                     {name}));
  for (std::string name : {"q", "k_cache", "v_cache", "k_new", "v_new", "out", "rotary_cos",
                                  "rotary_sin", "softmax_lse"}) {
    r.push_back(rule(name + "_last_stride_2", [name](KvFixture& f) {
                       flashplus_tensor& t = field(f.a(), name);
                       t.strides[t.ndim - 1] = 2;
                     }, {name}));
    r.push_back(rule(name + "_on_another_device",
                     [name](KvFixture& f) { fptest::claim_cuda(field(f.a(), name)); }, {name}));
  }
  for (std::string name : {"k_cache", "v_cache", "k_new", "v_new", "out", "rotary_cos"})
    r.push_back(rule(name + "_dtype_differs_from_q", [name](KvFixture& f) {
                       field(f.a(), name).dtype = FLASHPLUS_DTYPE_BFLOAT16;
                     }, {name}));
  r.push_back(rule("softmax_lse_not_fp32",
                   [](KvFixture& f) { f.a().softmax_lse.dtype = FLASHPLUS_DTYPE_FLOAT16; },
                   {"softmax_lse"}));
  r.push_back(rule("q_three_dims", [](KvFixture& f) { f.a().q.ndim = 3; }, {"q"}));
  r.push_back(rule("k_cache_head_dim_differs", [](KvFixture& f) { f.a().k_cache.sizes[3] = 4; },
                   {"k_cache"}));
  r.push_back(rule("v_cache_shape_differs", [](KvFixture& f) { f.a().v_cache.sizes[1] = 11; },
                   {"v_cache"}));
  r.push_back(rule("out_shape_differs", [](KvFixture& f) { f.a().out.sizes[1] = 1; }, {"out"}));
  r.push_back(rule("softmax_lse_shape_wrong", [](KvFixture& f) { f.a().softmax_lse.sizes[2] = 3; },
                   {"softmax_lse"}));
  r.push_back(rule("heads_not_a_multiple", [](KvFixture& f) {
                     for (flashplus_tensor* t : {&f.a().k_cache, &f.a().v_cache, &f.a().k_new,
                                                 &f.a().v_new})
                       t->sizes[2] = 3;
                   }, {"k_cache", "h_k", "h_q"}));
  r.push_back(rule("head_dim_257", [](KvFixture& f) {
                     for (flashplus_tensor* t : {&f.a().q, &f.a().k_cache, &f.a().v_cache,
                                                 &f.a().k_new, &f.a().v_new, &f.a().out})
                       t->sizes[3] = 257;
                   }, {"q", "head_dim"}));
  r.push_back(rule("cache_batch_smaller_than_batch", [](KvFixture& f) {
                     f.a().k_cache.sizes[0] = 1;
                     f.a().v_cache.sizes[0] = 1;
                   }, {"k_cache"}));
  // k_new / v_new.
  r.push_back(rule("k_new_without_v_new", [](KvFixture& f) { f.a().v_new.data = nullptr; },
                   {"v_new"}));
  r.push_back(rule("v_new_without_k_new", [](KvFixture& f) { f.a().k_new.data = nullptr; },
                   {"k_new"}));
  r.push_back(rule("k_new_batch_differs", [](KvFixture& f) { f.a().k_new.sizes[0] = 1; },
                   {"k_new"}));
  r.push_back(rule("v_new_shape_differs", [](KvFixture& f) { f.a().v_new.sizes[1] = 1; },
                   {"v_new"}));
  // cache_seqlens.
  r.push_back(rule("cache_seqlens_plus_new_exceeds_capacity",
                   [](KvFixture& f) { f.a().cache_seqlens = f.int32({11, 5}); }, {"cache_seqlens"}));
  r.push_back(rule("cache_seqlens_negative",
                   [](KvFixture& f) { f.a().cache_seqlens = f.int32({3, -1}); }, {"cache_seqlens"}));
  r.push_back(rule("cache_seqlens_wrong_length",
                   [](KvFixture& f) { f.a().cache_seqlens = f.int32({3}); }, {"cache_seqlens"}));
  r.push_back(rule("cache_seqlens_not_int32", [](KvFixture& f) {
                     f.a().cache_seqlens = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {2});
                   }, {"cache_seqlens"}));
  r.push_back(rule("no_cache_seqlens_but_new_rows", [](KvFixture& f) {
                     f.a().cache_seqlens.data = nullptr;  // the whole cache is full
                   }, {"cache_seqlens", "k_new"}));
  // Rotary.
  r.push_back(rule("rotary_dim_exceeds_head_dim", [](KvFixture& f) {
                     f.a().rotary_cos = f.tensor(FLASHPLUS_DTYPE_FLOAT16, {12, 5});
                     f.a().rotary_sin = f.tensor(FLASHPLUS_DTYPE_FLOAT16, {12, 5});
                   }, {"rotary_cos", "rotary_dim"}));
  r.push_back(rule("rotary_sin_missing", [](KvFixture& f) { f.a().rotary_sin.data = nullptr; },
                   {"rotary_sin"}));
  r.push_back(rule("rotary_sin_shape_differs", [](KvFixture& f) {
                     f.a().rotary_sin = f.tensor(FLASHPLUS_DTYPE_FLOAT16, {12, 1});
                   }, {"rotary_sin"}));
  r.push_back(rule("rotary_cos_one_dim", [](KvFixture& f) {
                     f.a().rotary_cos = f.tensor(FLASHPLUS_DTYPE_FLOAT16, {24});
                   }, {"rotary_cos"}));
  r.push_back(rule("rotary_table_shorter_than_positions", [](KvFixture& f) {
                     // Positions reach c + s_new - 1 = 6; a 5-row table cannot rotate them.
                     f.a().rotary_cos = f.tensor(FLASHPLUS_DTYPE_FLOAT16, {5, 2});
                     f.a().rotary_sin = f.tensor(FLASHPLUS_DTYPE_FLOAT16, {5, 2});
                   }, {"rotary_cos", "rotary_sin"}));
  // cache_batch_idx (3 cache entries).
  r.push_back(rule("cache_batch_idx_out_of_range",
                   [](KvFixture& f) { f.a().cache_batch_idx = f.int32({3, 0}); },
                   {"cache_batch_idx"}, kBatchIdx));
  r.push_back(rule("cache_batch_idx_negative",
                   [](KvFixture& f) { f.a().cache_batch_idx = f.int32({-1, 0}); },
                   {"cache_batch_idx"}, kBatchIdx));
  r.push_back(rule("cache_batch_idx_wrong_length",
                   [](KvFixture& f) { f.a().cache_batch_idx = f.int32({0, 1, 2}); },
                   {"cache_batch_idx"}, kBatchIdx));
  // cache_leftpad.
  r.push_back(rule("cache_leftpad_beyond_end",
                   [](KvFixture& f) { f.a().cache_leftpad = f.int32({6, 0}); }, {"cache_leftpad"}));
  r.push_back(rule("cache_leftpad_negative",
                   [](KvFixture& f) { f.a().cache_leftpad = f.int32({0, -1}); }, {"cache_leftpad"}));
  // Paged (page size 4, 3 pages per sequence, 8 in the pool).
  r.push_back(rule("paged_with_cache_batch_idx",
                   [](KvFixture& f) { f.a().cache_batch_idx = f.int32({1, 0}); },
                   {"cache_batch_idx"}, kPaged));
  r.push_back(rule("block_table_entry_too_large", [](KvFixture& f) {
                     f.keep.push_back(HostTensor::int32_2d(2, 3, {0, 1, 2, 3, 8, 5}));
                     f.a().block_table = f.keep.back().abi();
                   }, {"block_table"}, kPaged));
  r.push_back(rule("block_table_entry_negative", [](KvFixture& f) {
                     f.keep.push_back(HostTensor::int32_2d(2, 3, {0, -7, 2, 3, 4, 5}));
                     f.a().block_table = f.keep.back().abi();
                   }, {"block_table"}, kPaged));
  r.push_back(rule("block_table_wrong_batch", [](KvFixture& f) {
                     f.keep.push_back(HostTensor::int32_2d(1, 3, {0, 1, 2}));
                     f.a().block_table = f.keep.back().abi();
                   }, {"block_table"}, kPaged));
  r.push_back(rule("paged_capacity_exceeded",
                   [](KvFixture& f) { f.a().cache_seqlens = f.int32({11, 0}); }, {"cache_seqlens"},
                   kPaged));
  // Scalars and slopes.
  r.push_back(rule("softcap_negative", [](KvFixture& f) { f.a().softcap = -2.f; }, {"softcap"}));
  r.push_back(rule("window_left_below_minus_one", [](KvFixture& f) { f.a().window_left = -2; },
                   {"window_left"}));
  r.push_back(rule("window_right_below_minus_one", [](KvFixture& f) { f.a().window_right = -2; },
                   {"window_right"}));
  r.push_back(rule("num_splits_negative", [](KvFixture& f) { f.a().num_splits = -3; },
                   {"num_splits"}));
  r.push_back(rule("alibi_slopes_wrong_length", [](KvFixture& f) {
                     f.a().alibi_slopes = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {2});
                   }, {"alibi_slopes"}));
  KvRule cuda = rule("all_tensors_on_cuda", [](KvFixture& f) {
    flashplus_kvcache_args& a = f.a();
    for (flashplus_tensor* t : {&a.q, &a.k_cache, &a.v_cache, &a.k_new, &a.v_new, &a.rotary_cos,
                                &a.rotary_sin, &a.cache_seqlens, &a.cache_batch_idx,
                                &a.cache_leftpad, &a.block_table, &a.alibi_slopes, &a.out,
                                &a.softmax_lse})
      fptest::claim_cuda(*t);
  }, {});
  cuda.expected = FLASHPLUS_STATUS_NOT_COMPILED;
  r.push_back(cuda);
  return r;
}

class KvcacheRejects : public ::testing::TestWithParam<KvRule> {};

TEST_P(KvcacheRejects, Rule) {
  const KvRule& r = GetParam();
  if (r.expected == FLASHPLUS_STATUS_NOT_COMPILED && fptest::cuda_compiled())
    GTEST_SKIP() << "the CUDA backend is compiled in";
  KvFixture f = make_fixture(r.base);
  // The baseline must be valid; the dry run keeps the cache as it is for the real call below.
  f.a().flags = FLASHPLUS_FLAG_DRY_RUN;
  ASSERT_EQ(flashplus_fwd_kvcache(&f.a()), FLASHPLUS_STATUS_OK) << "baseline: "
                                                                << flashplus_last_error();
  f.a().flags = 0;
  r.mutate(f);
  EXPECT_TRUE(fptest::rejected(flashplus_fwd_kvcache(&f.a()), r.expected, r.names));
}

INSTANTIATE_TEST_SUITE_P(Kvcache, KvcacheRejects, ::testing::ValuesIn(kvcache_rules()),
                         fptest::RuleName());

TEST(KvcacheRejectsNull, NullArgs) {
  EXPECT_TRUE(fptest::invalid(flashplus_fwd_kvcache(nullptr), {"args"}));
}

TEST(KvcacheRejectsNull, RefusedCallLeavesTheCacheUntouched) {
  KvFixture f = make_fixture(kPlain);
  const std::vector<unsigned char> k_before = f.c.k_cache.storage_bytes();
  f.a().cache_seqlens = f.int32({3, 11});  // second sequence overflows
  EXPECT_EQ(flashplus_fwd_kvcache(&f.a()), FLASHPLUS_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(f.c.k_cache.storage_bytes(), k_before);
}

}  // namespace
