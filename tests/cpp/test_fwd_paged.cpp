// flashplus_fwd over a paged K/V (block_table), dense and varlen queries, any page size, against
// the oracle. Pages come from a shuffled pool with spare pages, so a kernel that ignores the
// table or assumes contiguous pages reads the wrong keys.
#include <gtest/gtest.h>

#include "support/fwd_case.h"

namespace {

using fptest::Alibi;
using fptest::AttentionConfig;

std::vector<AttentionConfig> paged_configs() {
  std::vector<AttentionConfig> list;
  for (int64_t page_size : {1, 3, 16}) {
    AttentionConfig dense;
    dense.page_size = page_size;
    dense.s_q = 5;
    dense.s_k = 48;  // a whole number of pages for every page size above
    list.push_back(dense);

    AttentionConfig causal_gqa = dense;
    causal_gqa.causal = true;
    causal_gqa.h_q = 6;
    causal_gqa.h_k = 2;
    causal_gqa.seqused_k = {48, 20};  // the second sequence stops mid-page
    list.push_back(causal_gqa);

    AttentionConfig varlen;
    varlen.page_size = page_size;
    varlen.seqlens_q = {3, 1, 0, 9};
    varlen.seqlens_k = {10, 1, 4, 17};
    varlen.alibi = Alibi::kPerHead;
    list.push_back(varlen);
  }
  AttentionConfig fp32;
  fp32.dtype = FLASHPLUS_DTYPE_FLOAT32;
  fp32.page_size = 4;
  fp32.s_q = 17;
  fp32.s_k = 20;
  fp32.window_left = 3;
  fp32.window_right = 2;
  fp32.softcap = 2.f;
  fp32.softmax_scale = 0.5f;
  list.push_back(fp32);

  AttentionConfig bf16 = fp32;
  bf16.dtype = FLASHPLUS_DTYPE_BFLOAT16;
  bf16.head_dim = 72;
  bf16.h_q = 3;
  bf16.h_k = 1;
  bf16.seqused_k = {13, 20};
  list.push_back(bf16);

  // Leftpad with pages: rows are absolute (row r of the sequence lives in page table[r / page]).
  AttentionConfig leftpad;
  leftpad.page_size = 5;
  leftpad.s_q = 4;
  leftpad.s_k = 25;
  leftpad.leftpad_k = {3, 11};
  leftpad.seqused_k = {25, 19};
  leftpad.causal = true;
  list.push_back(leftpad);
  return list;
}

class FwdPaged : public ::testing::TestWithParam<AttentionConfig> {};

TEST_P(FwdPaged, MatchesOracle) {
  fptest::FwdCase c = fptest::make_fwd_case(GetParam());
  fptest::check_fwd(c.args);
}

INSTANTIATE_TEST_SUITE_P(Configs, FwdPaged, ::testing::ValuesIn(paged_configs()),
                         fptest::ConfigName());

}  // namespace
