// flashplus_bwd against the oracle's gradients: dense and varlen, GQA sums, every mask and logit
// modifier, odd sizes, head dims 1..256, all dtypes; and bit-identical deterministic runs.
#include <gtest/gtest.h>

#include "support/bwd_case.h"

namespace {

using fptest::Alibi;
using fptest::AttentionConfig;

std::vector<AttentionConfig> bwd_configs() {
  std::vector<AttentionConfig> list;
  for (flashplus_dtype dtype :
       {FLASHPLUS_DTYPE_FLOAT32, FLASHPLUS_DTYPE_FLOAT16, FLASHPLUS_DTYPE_BFLOAT16}) {
    AttentionConfig base;
    base.dtype = dtype;
    list.push_back(base);

    AttentionConfig c = base;
    c.causal = true;
    c.h_q = 6;
    c.h_k = 2;
    list.push_back(c);

    c = base;
    c.window_left = 3;
    c.window_right = 1;
    c.alibi = Alibi::kPerBatchHead;
    list.push_back(c);

    c = base;
    c.softcap = 2.5f;
    c.softmax_scale = 0.5f;
    c.alibi = Alibi::kPerHead;
    list.push_back(c);

    c = base;
    c.seqlens_q = {5, 0, 17, 3, 1};
    c.seqlens_k = {7, 4, 17, 0, 13};
    c.causal = true;
    list.push_back(c);
  }
  for (int64_t d : {1, 72, 200, 256}) {
    AttentionConfig c;
    c.head_dim = d;
    c.h_q = 2;
    c.h_k = 1;
    c.s_q = 9;
    c.s_k = 12;
    list.push_back(c);
  }
  for (int64_t h_k : {6, 3, 1}) {
    AttentionConfig c;
    c.h_q = 6;
    c.h_k = h_k;
    c.window_left = 4;
    c.window_right = 0;
    list.push_back(c);
  }
  struct Lengths { int64_t s_q, s_k; };
  for (Lengths len : {Lengths{1, 1}, Lengths{1, 40}, Lengths{113, 17}, Lengths{17, 113}})
    for (bool causal : {false, true}) {
      AttentionConfig c;
      c.s_q = len.s_q;
      c.s_k = len.s_k;
      c.h_q = 2;
      c.h_k = 2;
      c.batch = 1;
      c.causal = causal;
      list.push_back(c);
    }
  AttentionConfig long_causal;
  long_causal.batch = 1;
  long_causal.s_q = long_causal.s_k = 1023;
  long_causal.h_q = 2;
  long_causal.h_k = 1;
  long_causal.head_dim = 40;
  long_causal.causal = true;
  long_causal.alibi = Alibi::kPerHead;
  list.push_back(long_causal);
  AttentionConfig varlen_gqa;
  varlen_gqa.dtype = FLASHPLUS_DTYPE_BFLOAT16;
  varlen_gqa.seqlens_q = {40, 1, 9};
  varlen_gqa.seqlens_k = {17, 33, 9};
  varlen_gqa.h_q = 6;
  varlen_gqa.h_k = 3;
  varlen_gqa.head_dim = 72;
  varlen_gqa.softcap = 3.f;
  varlen_gqa.softmax_scale = 0.4f;
  varlen_gqa.window_left = 5;
  varlen_gqa.window_right = 2;
  list.push_back(varlen_gqa);
  return list;
}

class Bwd : public ::testing::TestWithParam<AttentionConfig> {};

TEST_P(Bwd, MatchesOracle) {
  fptest::BwdCase c = fptest::make_bwd_case(GetParam());
  fptest::check_bwd(c.args);
}

TEST_P(Bwd, DeterministicMatchesOracle) {
  AttentionConfig config = GetParam();
  config.deterministic = true;
  fptest::BwdCase c = fptest::make_bwd_case(config);
  fptest::check_bwd(c.args);
}

INSTANTIATE_TEST_SUITE_P(Configs, Bwd, ::testing::ValuesIn(bwd_configs()), fptest::ConfigName());

TEST(BwdExtra, DeterministicRunsAreBitIdentical) {
  // Several query heads and many query rows feed each dk / dv: the accumulation order is where
  // non-determinism would show.
  for (bool varlen : {false, true}) {
    AttentionConfig c;
    c.deterministic = true;
    c.h_q = 6;
    c.h_k = 1;
    c.s_q = 113;
    c.s_k = 40;
    if (varlen) {
      c.seqlens_q = {60, 53};
      c.seqlens_k = {21, 19};
    }
    fptest::BwdCase run = fptest::make_bwd_case(c);
    ASSERT_EQ(flashplus_bwd(&run.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();
    const auto dq = run.dq.storage_bytes(), dk = run.dk.storage_bytes(),
               dv = run.dv.storage_bytes(), dsum = run.softmax_d.storage_bytes();
    for (int repeat = 0; repeat < 3; ++repeat) {
      for (fptest::HostTensor* t : {&run.dq, &run.dk, &run.dv, &run.softmax_d}) t->poison();
      ASSERT_EQ(flashplus_bwd(&run.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();
      EXPECT_EQ(run.dq.storage_bytes(), dq) << "varlen " << varlen;
      EXPECT_EQ(run.dk.storage_bytes(), dk) << "varlen " << varlen;
      EXPECT_EQ(run.dv.storage_bytes(), dv) << "varlen " << varlen;
      EXPECT_EQ(run.softmax_d.storage_bytes(), dsum) << "varlen " << varlen;
    }
  }
}

TEST(BwdExtra, SoftmaxDUsesTheGivenOut) {
  // softmax_d = rowsum(dout * out) of the tensors passed, even when out is not the forward's.
  AttentionConfig c;
  c.dtype = FLASHPLUS_DTYPE_FLOAT32;
  fptest::BwdCase run = fptest::make_bwd_case(c);
  fptest::Rng rng(3);
  run.out.fill_normal(rng);
  const flashplus_status status = flashplus_bwd(&run.args);
  ASSERT_EQ(status, FLASHPLUS_STATUS_OK) << flashplus_last_error();
  const fptest::RefArray out = run.out.values(), dout = run.dout.values();
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < c.h_q; ++h)
      for (int64_t i = 0; i < c.s_q; ++i) {
        double expected = 0;
        for (int64_t f = 0; f < c.head_dim; ++f)
          expected += out.at({b, i, h, f}) * dout.at({b, i, h, f});
        ASSERT_NEAR(run.softmax_d.get({b, h, i}), expected, 1e-5 * (1 + std::fabs(expected)));
      }
}

}  // namespace
