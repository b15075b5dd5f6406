// flashplus_fwd with varlen (cu_seqlens) layouts, empty sequences, seqused_k and leftpad_k, on
// dense and varlen K/V, against the oracle.
#include <gtest/gtest.h>

#include "support/fwd_case.h"

namespace {

using fptest::Alibi;
using fptest::AttentionConfig;

AttentionConfig varlen(std::vector<int32_t> seqlens_q, std::vector<int32_t> seqlens_k) {
  AttentionConfig c;
  c.seqlens_q = std::move(seqlens_q);
  c.seqlens_k = std::move(seqlens_k);
  return c;
}

std::vector<AttentionConfig> varlen_configs() {
  std::vector<AttentionConfig> list;
  // Sequence 1 is empty on both sides, sequence 3 has queries but no key (out 0, LSE +inf),
  // sequence 4 has keys but no query.
  const std::vector<int32_t> lens_q = {5, 0, 17, 3, 0, 1};
  const std::vector<int32_t> lens_k = {7, 0, 17, 0, 4, 13};
  for (flashplus_dtype dtype :
       {FLASHPLUS_DTYPE_FLOAT32, FLASHPLUS_DTYPE_FLOAT16, FLASHPLUS_DTYPE_BFLOAT16}) {
    AttentionConfig c = varlen(lens_q, lens_k);
    c.dtype = dtype;
    list.push_back(c);
    c.causal = true;
    list.push_back(c);
    c.causal = false;
    c.window_left = 2;
    c.window_right = 1;
    c.alibi = Alibi::kPerBatchHead;
    list.push_back(c);
    c.window_left = c.window_right = -1;
    c.alibi = Alibi::kPerHead;
    c.softcap = 2.0f;
    c.softmax_scale = 0.5f;
    list.push_back(c);
  }
  // GQA, big odd sequences, s_q > s_k and s_q < s_k within one batch.
  AttentionConfig c = varlen({113, 1, 40, 9}, {17, 113, 40, 30});
  c.h_q = 6;
  c.h_k = 2;
  c.head_dim = 72;
  list.push_back(c);
  c.causal = true;
  c.h_k = 3;
  list.push_back(c);
  c.h_k = 1;
  c.causal = false;
  c.window_left = 7;
  c.window_right = 0;
  c.dtype = FLASHPLUS_DTYPE_BFLOAT16;
  list.push_back(c);
  // A single sequence, and a batch of single-token sequences.
  list.push_back(varlen({31}, {31}));
  AttentionConfig singles = varlen({1, 1, 1, 1}, {1, 2, 3, 4});
  singles.causal = true;
  singles.head_dim = 200;
  list.push_back(singles);

  // seqused_k / leftpad_k on dense K/V (the dense key length is 23).
  AttentionConfig dense;
  dense.batch = 3;
  dense.s_q = 9;
  dense.s_k = 23;
  dense.seqused_k = {23, 10, 0};
  list.push_back(dense);
  dense.seqused_k.clear();
  dense.leftpad_k = {0, 5, 23};
  dense.causal = true;
  list.push_back(dense);
  dense.seqused_k = {20, 23, 7};
  dense.leftpad_k = {3, 23, 2};
  dense.causal = false;
  dense.alibi = Alibi::kPerHead;  // positions are counted after leftpad
  list.push_back(dense);
  dense.dtype = FLASHPLUS_DTYPE_FLOAT32;
  dense.window_left = 1;
  dense.window_right = 2;
  list.push_back(dense);

  // seqused_k / leftpad_k on varlen K/V.
  AttentionConfig v = varlen({4, 6, 2}, {10, 12, 5});
  v.seqused_k = {8, 12, 0};
  v.leftpad_k = {2, 0, 0};
  list.push_back(v);
  v.causal = true;
  v.dtype = FLASHPLUS_DTYPE_BFLOAT16;
  list.push_back(v);
  v.causal = false;
  v.seqused_k.clear();
  v.leftpad_k = {9, 12, 1};
  v.window_left = 0;
  v.window_right = 0;
  v.dtype = FLASHPLUS_DTYPE_FLOAT32;
  list.push_back(v);
  return list;
}

class FwdVarlen : public ::testing::TestWithParam<AttentionConfig> {};

TEST_P(FwdVarlen, MatchesOracle) {
  fptest::FwdCase c = fptest::make_fwd_case(GetParam());
  fptest::check_fwd(c.args);
}

INSTANTIATE_TEST_SUITE_P(Configs, FwdVarlen, ::testing::ValuesIn(varlen_configs()),
                         fptest::ConfigName());

TEST(FwdVarlenExtra, MaxSeqlenMayExceedTheLongestSequence) {
  // max_seqlen_* are upper bounds, not exact maxima.
  AttentionConfig c = varlen({3, 8}, {5, 2});
  fptest::FwdCase fwd = fptest::make_fwd_case(c);
  fwd.args.max_seqlen_q = 20;
  fwd.args.max_seqlen_k = 30;
  fptest::check_fwd(fwd.args);
}

}  // namespace
