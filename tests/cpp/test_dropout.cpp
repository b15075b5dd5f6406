// Dropout: the library must drop exactly the entries the oracle's own Philox drops (checked
// through the sign of s_dmask), scale kept entries by 1 / (1 - p), keep LSE free of dropout, and
// differentiate through the same mask.
#include <gtest/gtest.h>

#include "support/bwd_case.h"
#include "support/fwd_case.h"

namespace {

using fptest::Alibi;
using fptest::AttentionConfig;

std::vector<AttentionConfig> dropout_configs() {
  std::vector<AttentionConfig> list;
  for (float p : {0.1f, 0.5f, 0.9f}) {
    AttentionConfig c;
    c.dropout_p = p;
    c.with_s_dmask = true;
    c.s_q = 13;
    c.s_k = 21;
    c.philox_seed = 0x0123456789ULL + static_cast<uint64_t>(p * 100);
    c.label = "fp16_p" + std::to_string(static_cast<int>(p * 100));
    list.push_back(c);
  }
  AttentionConfig causal;
  causal.dropout_p = 0.3f;
  causal.with_s_dmask = true;
  causal.causal = true;
  causal.alibi = Alibi::kPerHead;
  causal.s_q = 19;
  causal.s_k = 9;  // rows with no key: out 0, LSE +inf, s_dmask 0
  causal.h_q = 6;
  causal.h_k = 2;
  causal.philox_offset = 0x0000000500000011ULL;  // high word enters the key
  list.push_back(causal);

  AttentionConfig s_dmask_fp16 = causal;
  s_dmask_fp16.s_dmask_dtype = FLASHPLUS_DTYPE_FLOAT16;
  s_dmask_fp16.causal = false;
  s_dmask_fp16.window_left = 3;
  s_dmask_fp16.window_right = 4;
  list.push_back(s_dmask_fp16);

  AttentionConfig varlen;
  varlen.dropout_p = 0.25f;
  varlen.with_s_dmask = true;
  varlen.seqlens_q = {6, 0, 11, 2};
  varlen.seqlens_k = {9, 3, 11, 0};
  varlen.softcap = 2.f;
  varlen.softmax_scale = 0.5f;
  varlen.dtype = FLASHPLUS_DTYPE_BFLOAT16;
  list.push_back(varlen);

  AttentionConfig leftpad;  // i and j count after leftpad
  leftpad.dropout_p = 0.4f;
  leftpad.with_s_dmask = true;
  leftpad.batch = 2;
  leftpad.s_q = 5;
  leftpad.s_k = 30;
  leftpad.leftpad_k = {4, 9};
  leftpad.seqused_k = {30, 22};
  leftpad.dtype = FLASHPLUS_DTYPE_FLOAT32;
  list.push_back(leftpad);

  AttentionConfig no_dropout;  // p = 0: s_dmask is P, never negative
  no_dropout.with_s_dmask = true;
  no_dropout.causal = true;
  no_dropout.s_q = 7;
  no_dropout.s_k = 12;
  list.push_back(no_dropout);
  return list;
}

class Dropout : public ::testing::TestWithParam<AttentionConfig> {};

TEST_P(Dropout, ForwardMaskAndOutputMatchOracle) {
  fptest::FwdCase c = fptest::make_fwd_case(GetParam());
  fptest::check_fwd(c.args);
}

TEST_P(Dropout, BackwardMatchesOracle) {
  AttentionConfig config = GetParam();
  // The backward takes neither seqused_k nor leftpad_k: check it on the rest of the config.
  config.seqused_k.clear();
  config.leftpad_k.clear();
  config.with_s_dmask = false;
  fptest::BwdCase c = fptest::make_bwd_case(config);
  fptest::check_bwd(c.args);
}

INSTANTIATE_TEST_SUITE_P(Configs, Dropout, ::testing::ValuesIn(dropout_configs()),
                         fptest::ConfigName());

TEST(DropoutExtra, DenseAndVarlenDropTheSameEntries) {
  // The mask is indexed within each sequence, so the same sequence dropped in a dense batch and
  // in a packed batch gives the same s_dmask sign pattern.
  AttentionConfig dense;
  dense.batch = 3;
  dense.s_q = 6;
  dense.s_k = 10;
  dense.dropout_p = 0.5f;
  dense.with_s_dmask = true;
  dense.dtype = FLASHPLUS_DTYPE_FLOAT32;
  fptest::FwdCase a = fptest::make_fwd_case(dense);
  ASSERT_EQ(flashplus_fwd(&a.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();

  AttentionConfig packed = dense;
  packed.seqlens_q = {6, 6, 6};
  packed.seqlens_k = {10, 10, 10};
  fptest::FwdCase b = fptest::make_fwd_case(packed);
  ASSERT_EQ(flashplus_fwd(&b.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();

  const fptest::RefArray mask_dense = a.s_dmask.values(), mask_packed = b.s_dmask.values();
  ASSERT_EQ(mask_dense.sizes, mask_packed.sizes);
  for (int64_t n = 0; n < mask_dense.numel(); ++n)
    ASSERT_EQ(std::signbit(mask_dense.values[n]), std::signbit(mask_packed.values[n])) << n;
}

TEST(DropoutExtra, OffsetSelectsAnotherMaskAndSameSeedRepeats) {
  AttentionConfig c;
  c.dropout_p = 0.5f;
  c.with_s_dmask = true;
  c.dtype = FLASHPLUS_DTYPE_FLOAT32;
  fptest::FwdCase run = fptest::make_fwd_case(c);
  ASSERT_EQ(flashplus_fwd(&run.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();
  const std::vector<unsigned char> first_out = run.out.storage_bytes();
  const fptest::RefArray first_mask = run.s_dmask.values();

  run.out.poison();
  ASSERT_EQ(flashplus_fwd(&run.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();
  EXPECT_EQ(run.out.storage_bytes(), first_out) << "same seed and offset must repeat exactly";

  run.args.philox_offset = 4;
  ASSERT_EQ(flashplus_fwd(&run.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();
  const fptest::RefArray second_mask = run.s_dmask.values();
  int64_t differ = 0;
  for (int64_t n = 0; n < first_mask.numel(); ++n)
    differ += std::signbit(first_mask.values[n]) != std::signbit(second_mask.values[n]);
  EXPECT_GT(differ, first_mask.numel() / 4);
}

TEST(DropoutExtra, DeterministicBackwardWithDropoutIsBitIdentical) {
  AttentionConfig c;
  c.dropout_p = 0.2f;
  c.deterministic = true;
  c.h_q = 4;
  c.h_k = 2;
  c.s_q = 23;
  c.s_k = 31;
  fptest::BwdCase run = fptest::make_bwd_case(c);
  ASSERT_EQ(flashplus_bwd(&run.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();
  const std::vector<unsigned char> dq = run.dq.storage_bytes(), dk = run.dk.storage_bytes(),
                                   dv = run.dv.storage_bytes();
  for (fptest::HostTensor* t : {&run.dq, &run.dk, &run.dv}) t->poison();
  ASSERT_EQ(flashplus_bwd(&run.args), FLASHPLUS_STATUS_OK) << flashplus_last_error();
  EXPECT_EQ(run.dq.storage_bytes(), dq);
  EXPECT_EQ(run.dk.storage_bytes(), dk);
  EXPECT_EQ(run.dv.storage_bytes(), dv);
}

}  // namespace
