// flashplus_fwd on dense (b, s, h, d) tensors against the oracle: every mask and logit modifier,
// GQA / MQA ratios, odd and unequal sequence lengths, head dims 1..256, fp32 / fp16 / bf16.
#include <gtest/gtest.h>

#include "support/fwd_case.h"

namespace {

using fptest::Alibi;
using fptest::AttentionConfig;

std::vector<AttentionConfig> dense_configs() {
  std::vector<AttentionConfig> list;
  for (flashplus_dtype dtype :
       {FLASHPLUS_DTYPE_FLOAT32, FLASHPLUS_DTYPE_FLOAT16, FLASHPLUS_DTYPE_BFLOAT16}) {
    AttentionConfig base;
    base.dtype = dtype;
    list.push_back(base);

    AttentionConfig c = base;
    c.causal = true;
    list.push_back(c);

    c = base;
    c.window_left = 3;
    c.window_right = 2;
    list.push_back(c);

    c = base;
    c.window_left = 4;
    c.window_right = -1;
    list.push_back(c);

    c = base;
    c.window_left = -1;
    c.window_right = 1;
    list.push_back(c);

    c = base;
    c.causal = true;
    c.window_left = 5;  // local causal: window (5, 0)
    list.push_back(c);

    c = base;
    c.softcap = 2.5f;
    c.softmax_scale = 0.5f;  // logits of a few units, so the cap bends them
    list.push_back(c);

    c = base;
    c.alibi = Alibi::kPerHead;
    list.push_back(c);

    c = base;
    c.alibi = Alibi::kPerBatchHead;
    c.causal = true;
    list.push_back(c);

    c = base;
    c.softcap = 3.0f;
    c.softmax_scale = 0.6f;
    c.alibi = Alibi::kPerBatchHead;
    c.window_left = 6;
    c.window_right = 3;
    list.push_back(c);
  }

  // Head dims, including the ones CUDA has to pad.
  for (int64_t d : {1, 72, 200, 256}) {
    AttentionConfig c;
    c.head_dim = d;
    c.h_q = c.h_k = 2;
    c.causal = d == 72;
    list.push_back(c);
  }
  AttentionConfig d256_bf16;
  d256_bf16.dtype = FLASHPLUS_DTYPE_BFLOAT16;
  d256_bf16.head_dim = 256;
  d256_bf16.h_q = 2;
  d256_bf16.h_k = 1;
  list.push_back(d256_bf16);
  AttentionConfig d1_fp32;
  d1_fp32.dtype = FLASHPLUS_DTYPE_FLOAT32;
  d1_fp32.head_dim = 1;
  list.push_back(d1_fp32);

  // GQA / MQA: h_q = 6 over 6, 3, 2 and 1 key heads.
  for (int64_t h_k : {6, 3, 2, 1})
    for (bool causal : {false, true}) {
      AttentionConfig c;
      c.h_q = 6;
      c.h_k = h_k;
      c.causal = causal;
      c.alibi = causal ? Alibi::kPerHead : Alibi::kNone;
      list.push_back(c);
    }

  // Sequence lengths: 1, odd, and s_q != s_k both ways (bottom-right alignment matters).
  struct Lengths { int64_t s_q, s_k; };
  for (Lengths len : {Lengths{1, 1}, Lengths{1, 113}, Lengths{113, 17}, Lengths{17, 113},
                      Lengths{113, 113}, Lengths{17, 5}, Lengths{5, 17}})
    for (bool causal : {false, true}) {
      AttentionConfig c;
      c.s_q = len.s_q;
      c.s_k = len.s_k;
      c.h_q = 2;
      c.h_k = 1;
      c.causal = causal;
      list.push_back(c);
    }
  // Windows with s_q != s_k, and a window that leaves early rows with no key.
  for (Lengths len : {Lengths{17, 5}, Lengths{5, 17}, Lengths{17, 40}}) {
    AttentionConfig c;
    c.s_q = len.s_q;
    c.s_k = len.s_k;
    c.window_left = 2;
    c.window_right = 0;
    c.alibi = Alibi::kPerHead;
    list.push_back(c);
    c.window_left = 0;
    c.window_right = 3;
    c.alibi = Alibi::kNone;
    c.dtype = FLASHPLUS_DTYPE_FLOAT32;
    list.push_back(c);
  }
  // The long odd length of the design's test list.
  AttentionConfig long_causal;
  long_causal.batch = 1;
  long_causal.s_q = long_causal.s_k = 1023;
  long_causal.h_q = 2;
  long_causal.h_k = 1;
  long_causal.head_dim = 64;
  long_causal.causal = true;
  list.push_back(long_causal);
  // Bigger batch, explicit split hint (the CPU backend may ignore it; results must not change).
  AttentionConfig batched;
  batched.batch = 5;
  batched.s_q = 9;
  batched.s_k = 31;
  batched.num_splits = 3;
  batched.label = "fp16_b5_sq9_sk31_splits3";
  list.push_back(batched);
  return list;
}

class FwdDense : public ::testing::TestWithParam<AttentionConfig> {};

TEST_P(FwdDense, MatchesOracle) {
  fptest::FwdCase c = fptest::make_fwd_case(GetParam());
  fptest::check_fwd(c.args);
}

INSTANTIATE_TEST_SUITE_P(Configs, FwdDense, ::testing::ValuesIn(dense_configs()),
                         fptest::ConfigName());

TEST(FwdDenseExtra, CustomSoftmaxScaleAndLargeLogits) {
  // Logits of tens of units: the online softmax must rescale without overflow.
  AttentionConfig c;
  c.softmax_scale = 3.0f;
  c.s_q = 33;
  c.s_k = 47;
  c.dtype = FLASHPLUS_DTYPE_FLOAT32;
  fptest::FwdCase fwd = fptest::make_fwd_case(c);
  fptest::check_fwd(fwd.args);
}

TEST(FwdDenseExtra, RepeatedCallsAreBitIdentical) {
  AttentionConfig c;
  c.s_q = 40;
  c.s_k = 57;
  c.causal = true;
  fptest::FwdCase fwd = fptest::make_fwd_case(c);
  ASSERT_EQ(flashplus_fwd(&fwd.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();
  const std::vector<unsigned char> first_out = fwd.out.storage_bytes();
  const std::vector<unsigned char> first_lse = fwd.lse.storage_bytes();
  fwd.out.poison();
  fwd.lse.poison();
  ASSERT_EQ(flashplus_fwd(&fwd.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();
  EXPECT_EQ(fwd.out.storage_bytes(), first_out);
  EXPECT_EQ(fwd.lse.storage_bytes(), first_lse);
}

}  // namespace
