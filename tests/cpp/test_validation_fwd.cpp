// flashplus_fwd refuses every malformed request with INVALID_ARGUMENT (or NOT_COMPILED for CUDA
// tensors in a CPU-only build) and a message naming the argument. One test per rule.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "support/fwd_case.h"
#include "support/rejection.h"
#include "support/validation_rule.h"

namespace {

using fptest::HostTensor;

enum Base { kDense, kVarlen, kPaged, kVarlenPaged };

using FwdFixture = fptest::CaseFixture<fptest::FwdCase>;

FwdFixture make_fixture(int base) {
  fptest::AttentionConfig cfg;
  cfg.batch = 2;
  cfg.s_q = 5;
  cfg.s_k = 8;
  cfg.h_q = 4;
  cfg.h_k = 2;
  cfg.head_dim = 8;
  cfg.alibi = fptest::Alibi::kPerHead;
  if (base == kVarlen || base == kVarlenPaged) {
    cfg.seqlens_q = {3, 2};
    cfg.seqlens_k = {4, 5};
  }
  if (base == kPaged || base == kVarlenPaged) cfg.page_size = 4;
  return FwdFixture{fptest::make_fwd_case(cfg), {}};
}

using FwdRule = fptest::Rule<FwdFixture>;

FwdRule rule(std::string label, std::function<void(FwdFixture&)> mutate,
             std::vector<std::string> names, int base = kDense) {
  return fptest::make_rule<FwdFixture>(std::move(label), std::move(mutate), std::move(names), base);
}

void claim_all_cuda(flashplus_fwd_args& a) {
  for (flashplus_tensor* t : {&a.q, &a.k, &a.v, &a.out, &a.softmax_lse, &a.s_dmask,
                              &a.cu_seqlens_q, &a.cu_seqlens_k, &a.seqused_k, &a.leftpad_k,
                              &a.block_table, &a.alibi_slopes})
    fptest::claim_cuda(*t);
}

std::vector<FwdRule> fwd_rules() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<FwdRule> r;
  // Struct header.
  r.push_back(rule("struct_size_zero", [](FwdFixture& f) { f.a().struct_size = 0; }, {"struct_size"}));
  r.push_back(rule("struct_size_too_small",
                   [](FwdFixture& f) { f.a().struct_size = sizeof(flashplus_fwd_args) - 8; },
                   {"struct_size"}));
  // Required tensors.
  r.push_back(rule("q_missing", [](FwdFixture& f) { f.a().q.data = nullptr; }, {"q"}));
  r.push_back(rule("k_missing", [](FwdFixture& f) { f.a().k.data = nullptr; }, {"k"}));
  r.push_back(rule("v_missing", [](FwdFixture& f) { f.a().v.data = nullptr; }, {"v"}));
  r.push_back(rule("out_missing", [](FwdFixture& f) { f.a().out.data = nullptr; }, {"out"}));
  r.push_back(rule("softmax_lse_missing", [](FwdFixture& f) { f.a().softmax_lse.data = nullptr; },
                   {"softmax_lse"}));
  // Dtypes.
  r.push_back(rule("q_int32", [](FwdFixture& f) { f.a().q.dtype = FLASHPLUS_DTYPE_INT32; }, {"q"}));
  r.push_back(rule("q_unknown_dtype", [](FwdFixture& f) { f.a().q.dtype = 17; }, {"q"}));
  r.push_back(rule("k_dtype_differs_from_q",
                   [](FwdFixture& f) { f.a().k.dtype = FLASHPLUS_DTYPE_BFLOAT16; }, {"k"}));
  r.push_back(rule("v_dtype_differs_from_q",
                   [](FwdFixture& f) { f.a().v.dtype = FLASHPLUS_DTYPE_FLOAT32; }, {"v"}));
  r.push_back(rule("out_dtype_differs_from_q",
                   [](FwdFixture& f) { f.a().out.dtype = FLASHPLUS_DTYPE_BFLOAT16; }, {"out"}));
  r.push_back(rule("softmax_lse_not_fp32",
                   [](FwdFixture& f) { f.a().softmax_lse.dtype = FLASHPLUS_DTYPE_FLOAT16; },
                   {"softmax_lse"}));
  r.push_back(rule("alibi_slopes_not_fp32",
                   [](FwdFixture& f) { f.a().alibi_slopes.dtype = FLASHPLUS_DTYPE_FLOAT16; },
                   {"alibi_slopes"}));
  r.push_back(rule("s_dmask_int32", [](FwdFixture& f) {
                     f.a().s_dmask = f.tensor(FLASHPLUS_DTYPE_INT32, {2, 4, 5, 8});
                   }, {"s_dmask"}));
  // Ranks and strides.
  r.push_back(rule("q_ndim_3_without_cu_seqlens", [](FwdFixture& f) { f.a().q.ndim = 3; }, {"q"}));
  r.push_back(rule("q_ndim_0", [](FwdFixture& f) { f.a().q.ndim = 0; }, {"q"}));
  r.push_back(rule("q_ndim_above_max", [](FwdFixture& f) { f.a().q.ndim = FLASHPLUS_MAX_DIMS + 1; },
                   {"q"}));
  r.push_back(rule("k_ndim_5", [](FwdFixture& f) {
                     f.a().k.ndim = 5;
                     f.a().k.sizes[4] = 1;
                     f.a().k.strides[4] = 1;
                   }, {"k"}));
  r.push_back(rule("q_last_stride_2", [](FwdFixture& f) { f.a().q.strides[3] = 2; }, {"q"}));
  r.push_back(rule("k_last_stride_0", [](FwdFixture& f) { f.a().k.strides[3] = 0; }, {"k"}));
  r.push_back(rule("v_last_stride_2", [](FwdFixture& f) { f.a().v.strides[3] = 2; }, {"v"}));
  r.push_back(rule("out_last_stride_2", [](FwdFixture& f) { f.a().out.strides[3] = 2; }, {"out"}));
  r.push_back(rule("softmax_lse_last_stride_2",
                   [](FwdFixture& f) { f.a().softmax_lse.strides[2] = 2; }, {"softmax_lse"}));
  // Strides whose reach overflows int64: no such tensor exists in memory.
  r.push_back(rule("q_stride_reach_overflows", [](FwdFixture& f) {
                     f.a().q.strides[1] = std::numeric_limits<int64_t>::max() / 2;
                   }, {"q"}));
  r.push_back(rule("k_stride_most_negative", [](FwdFixture& f) {
                     f.a().k.strides[1] = std::numeric_limits<int64_t>::min();
                   }, {"k"}));
  r.push_back(rule("out_stride_reach_overflows", [](FwdFixture& f) {
                     f.a().out.strides[0] = std::numeric_limits<int64_t>::max();
                   }, {"out"}));
  r.push_back(rule("q_negative_size", [](FwdFixture& f) { f.a().q.sizes[1] = -5; }, {"q"}));
  // Shapes.
  r.push_back(rule("k_head_dim_differs", [](FwdFixture& f) { f.a().k.sizes[3] = 16; }, {"k"}));
  r.push_back(rule("k_batch_differs", [](FwdFixture& f) { f.a().k.sizes[0] = 1; }, {"k"}));
  r.push_back(rule("v_seqlen_differs_from_k", [](FwdFixture& f) { f.a().v.sizes[1] = 7; }, {"v"}));
  r.push_back(rule("v_heads_differ_from_k", [](FwdFixture& f) { f.a().v.sizes[2] = 1; }, {"v"}));
  r.push_back(rule("out_shape_differs_from_q", [](FwdFixture& f) { f.a().out.sizes[2] = 2; },
                   {"out"}));
  r.push_back(rule("softmax_lse_shape_wrong", [](FwdFixture& f) { f.a().softmax_lse.sizes[2] = 4; },
                   {"softmax_lse"}));
  r.push_back(rule("heads_not_a_multiple", [](FwdFixture& f) {
                     f.a().k.sizes[2] = 3;
                     f.a().v.sizes[2] = 3;
                   }, {"k", "h_k", "h_q"}));
  r.push_back(rule("head_dim_zero", [](FwdFixture& f) {
                     for (flashplus_tensor* t : {&f.a().q, &f.a().k, &f.a().v, &f.a().out})
                       t->sizes[3] = 0;
                   }, {"q", "head_dim"}));
  r.push_back(rule("head_dim_257", [](FwdFixture& f) {
                     for (flashplus_tensor* t : {&f.a().q, &f.a().k, &f.a().v, &f.a().out})
                       t->sizes[3] = 257;
                   }, {"q", "head_dim"}));
  r.push_back(rule("alibi_slopes_wrong_length",
                   [](FwdFixture& f) { f.a().alibi_slopes = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {5}); },
                   {"alibi_slopes"}));
  r.push_back(rule("alibi_slopes_wrong_batch", [](FwdFixture& f) {
                     f.a().alibi_slopes = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {3, 4});
                   }, {"alibi_slopes"}));
  r.push_back(rule("s_dmask_wrong_shape", [](FwdFixture& f) {
                     f.a().s_dmask = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {2, 4, 5, 7});
                   }, {"s_dmask"}));
  // Scalars.
  r.push_back(rule("dropout_p_one", [](FwdFixture& f) { f.a().dropout_p = 1.0f; }, {"dropout_p"}));
  r.push_back(rule("dropout_p_negative", [](FwdFixture& f) { f.a().dropout_p = -0.1f; },
                   {"dropout_p"}));
  r.push_back(rule("dropout_p_nan", [nan](FwdFixture& f) { f.a().dropout_p = nan; }, {"dropout_p"}));
  r.push_back(rule("softcap_negative", [](FwdFixture& f) { f.a().softcap = -1.0f; }, {"softcap"}));
  r.push_back(rule("softcap_nan", [nan](FwdFixture& f) { f.a().softcap = nan; }, {"softcap"}));
  r.push_back(rule("window_left_below_minus_one", [](FwdFixture& f) { f.a().window_left = -2; },
                   {"window_left"}));
  r.push_back(rule("window_right_below_minus_one", [](FwdFixture& f) { f.a().window_right = -5; },
                   {"window_right"}));
  r.push_back(rule("num_splits_negative", [](FwdFixture& f) { f.a().num_splits = -1; },
                   {"num_splits"}));
  // seqused_k / leftpad_k (dense: length 8).
  r.push_back(rule("seqused_k_exceeds_length",
                   [](FwdFixture& f) { f.a().seqused_k = f.int32({8, 9}); }, {"seqused_k"}));
  r.push_back(rule("seqused_k_negative",
                   [](FwdFixture& f) { f.a().seqused_k = f.int32({-1, 3}); }, {"seqused_k"}));
  r.push_back(rule("seqused_k_wrong_length",
                   [](FwdFixture& f) { f.a().seqused_k = f.int32({3, 3, 3}); }, {"seqused_k"}));
  r.push_back(rule("seqused_k_not_int32", [](FwdFixture& f) {
                     f.a().seqused_k = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {2});
                   }, {"seqused_k"}));
  r.push_back(rule("leftpad_k_beyond_length",
                   [](FwdFixture& f) { f.a().leftpad_k = f.int32({0, 9}); }, {"leftpad_k"}));
  r.push_back(rule("leftpad_k_beyond_seqused", [](FwdFixture& f) {
                     f.a().seqused_k = f.int32({3, 8});
                     f.a().leftpad_k = f.int32({4, 0});
                   }, {"leftpad_k"}));
  r.push_back(rule("leftpad_k_negative",
                   [](FwdFixture& f) { f.a().leftpad_k = f.int32({-2, 0}); }, {"leftpad_k"}));
  r.push_back(rule("leftpad_k_wrong_length",
                   [](FwdFixture& f) { f.a().leftpad_k = f.int32({0}); }, {"leftpad_k"}));
  // Devices.
  r.push_back(rule("k_on_another_device",
                   [](FwdFixture& f) { fptest::claim_cuda(f.a().k); }, {"k"}));
  r.push_back(rule("out_on_another_device",
                   [](FwdFixture& f) { fptest::claim_cuda(f.a().out); }, {"out"}));
  r.push_back(rule("alibi_slopes_on_another_device",
                   [](FwdFixture& f) { fptest::claim_cuda(f.a().alibi_slopes); }, {"alibi_slopes"}));
  r.push_back(rule("q_unknown_device_type", [](FwdFixture& f) {
                     for (flashplus_tensor* t : {&f.a().q, &f.a().k, &f.a().v, &f.a().out,
                                                 &f.a().softmax_lse, &f.a().alibi_slopes})
                       t->device_type = 9;
                   }, {"q", "device_type"}));
  FwdRule cuda = rule("all_tensors_on_cuda", [](FwdFixture& f) { claim_all_cuda(f.a()); }, {});
  cuda.expected = FLASHPLUS_STATUS_NOT_COMPILED;
  r.push_back(cuda);

  // Varlen (lengths q {3, 2}, k {4, 5}: total_q 5, total_k 9).
  r.push_back(rule("cu_seqlens_q_not_int32", [](FwdFixture& f) {
                     f.a().cu_seqlens_q = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {3});
                   }, {"cu_seqlens_q"}, kVarlen));
  r.push_back(rule("cu_seqlens_q_decreasing",
                   [](FwdFixture& f) { f.a().cu_seqlens_q = f.int32({0, 4, 3}); }, {"cu_seqlens_q"},
                   kVarlen));
  r.push_back(rule("cu_seqlens_q_first_not_zero",
                   [](FwdFixture& f) { f.a().cu_seqlens_q = f.int32({1, 3, 5}); }, {"cu_seqlens_q"},
                   kVarlen));
  r.push_back(rule("cu_seqlens_q_last_not_total",
                   [](FwdFixture& f) { f.a().cu_seqlens_q = f.int32({0, 3, 4}); }, {"cu_seqlens_q"},
                   kVarlen));
  r.push_back(rule("cu_seqlens_q_last_beyond_total",
                   [](FwdFixture& f) { f.a().cu_seqlens_q = f.int32({0, 3, 6}); }, {"cu_seqlens_q"},
                   kVarlen));
  r.push_back(rule("cu_seqlens_q_two_dims", [](FwdFixture& f) {
                     f.keep.push_back(HostTensor::int32_2d(1, 3, {0, 3, 5}));
                     f.a().cu_seqlens_q = f.keep.back().abi();
                   }, {"cu_seqlens_q"}, kVarlen));
  r.push_back(rule("cu_seqlens_k_missing", [](FwdFixture& f) { f.a().cu_seqlens_k.data = nullptr; },
                   {"cu_seqlens_k"}, kVarlen));
  r.push_back(rule("cu_seqlens_k_wrong_length",
                   [](FwdFixture& f) { f.a().cu_seqlens_k = f.int32({0, 4, 9, 9}); },
                   {"cu_seqlens_k"}, kVarlen));
  r.push_back(rule("cu_seqlens_k_decreasing",
                   [](FwdFixture& f) { f.a().cu_seqlens_k = f.int32({0, 10, 9}); }, {"cu_seqlens_k"},
                   kVarlen));
  r.push_back(rule("cu_seqlens_k_last_not_total",
                   [](FwdFixture& f) { f.a().cu_seqlens_k = f.int32({0, 4, 8}); }, {"cu_seqlens_k"},
                   kVarlen));
  r.push_back(rule("cu_seqlens_k_not_int32", [](FwdFixture& f) {
                     f.a().cu_seqlens_k = f.tensor(FLASHPLUS_DTYPE_FLOAT16, {3});
                   }, {"cu_seqlens_k"}, kVarlen));
  r.push_back(rule("varlen_q_four_dims", [](FwdFixture& f) {
                     f.a().q = f.tensor(FLASHPLUS_DTYPE_FLOAT16, {1, 5, 4, 8});
                   }, {"q"}, kVarlen));
  r.push_back(rule("varlen_lse_dense_shape", [](FwdFixture& f) {
                     f.a().softmax_lse = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {2, 4, 3});
                   }, {"softmax_lse"}, kVarlen));
  r.push_back(rule("max_seqlen_q_below_longest", [](FwdFixture& f) { f.a().max_seqlen_q = 2; },
                   {"max_seqlen_q"}, kVarlen));
  r.push_back(rule("max_seqlen_k_below_longest", [](FwdFixture& f) { f.a().max_seqlen_k = 4; },
                   {"max_seqlen_k"}, kVarlen));
  r.push_back(rule("varlen_seqused_k_exceeds_length",
                   [](FwdFixture& f) { f.a().seqused_k = f.int32({5, 5}); }, {"seqused_k"}, kVarlen));
  r.push_back(rule("varlen_leftpad_k_beyond_length",
                   [](FwdFixture& f) { f.a().leftpad_k = f.int32({0, 6}); }, {"leftpad_k"}, kVarlen));

  // Paged (page size 4, 2 pages per sequence, 7 pages in the pool).
  r.push_back(rule("block_table_entry_too_large", [](FwdFixture& f) {
                     f.keep.push_back(HostTensor::int32_2d(2, 2, {0, 1, 7, 2}));
                     f.a().block_table = f.keep.back().abi();
                   }, {"block_table"}, kPaged));
  r.push_back(rule("block_table_entry_negative", [](FwdFixture& f) {
                     f.keep.push_back(HostTensor::int32_2d(2, 2, {0, -1, 3, 2}));
                     f.a().block_table = f.keep.back().abi();
                   }, {"block_table"}, kPaged));
  r.push_back(rule("block_table_not_int32", [](FwdFixture& f) {
                     f.a().block_table = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {2, 2});
                   }, {"block_table"}, kPaged));
  r.push_back(rule("block_table_wrong_batch", [](FwdFixture& f) {
                     f.keep.push_back(HostTensor::int32_2d(3, 2, {0, 1, 2, 3, 4, 5}));
                     f.a().block_table = f.keep.back().abi();
                   }, {"block_table"}, kPaged));
  r.push_back(rule("block_table_one_dim",
                   [](FwdFixture& f) { f.a().block_table = f.int32({0, 1, 2, 3}); }, {"block_table"},
                   kPaged));
  r.push_back(rule("paged_v_page_size_differs", [](FwdFixture& f) { f.a().v.sizes[1] = 2; }, {"v"},
                   kPaged));
  r.push_back(rule("paged_seqused_k_beyond_capacity",
                   [](FwdFixture& f) { f.a().seqused_k = f.int32({9, 8}); }, {"seqused_k"}, kPaged));
  r.push_back(rule("varlen_paged_length_beyond_pages",
                   [](FwdFixture& f) { f.a().cu_seqlens_k = f.int32({0, 4, 13}); },
                   {"cu_seqlens_k", "block_table"}, kVarlenPaged));
  return r;
}

class FwdRejects : public ::testing::TestWithParam<FwdRule> {};

TEST_P(FwdRejects, Rule) {
  const FwdRule& r = GetParam();
  if (r.expected == FLASHPLUS_STATUS_NOT_COMPILED && fptest::cuda_compiled())
    GTEST_SKIP() << "the CUDA backend is compiled in";
  FwdFixture f = make_fixture(r.base);
  ASSERT_EQ(flashplus_fwd(&f.a()), FLASHPLUS_STATUS_OK) << "baseline: " << flashplus_last_error();
  r.mutate(f);
  EXPECT_TRUE(fptest::rejected(flashplus_fwd(&f.a()), r.expected, r.names));
}

INSTANTIATE_TEST_SUITE_P(Fwd, FwdRejects, ::testing::ValuesIn(fwd_rules()), fptest::RuleName());

TEST(FwdRejectsNull, NullArgs) {
  EXPECT_TRUE(fptest::invalid(flashplus_fwd(nullptr), {"args"}));
}

TEST(FwdRejectsNull, ErrorClearsOnNextSuccess) {
  FwdFixture f = make_fixture(kDense);
  f.a().softcap = -1.f;
  EXPECT_EQ(flashplus_fwd(&f.a()), FLASHPLUS_STATUS_INVALID_ARGUMENT);
  EXPECT_STRNE(flashplus_last_error(), "");
  f.a().softcap = 0.f;
  EXPECT_EQ(flashplus_fwd(&f.a()), FLASHPLUS_STATUS_OK);
  EXPECT_STREQ(flashplus_last_error(), "");
}

}  // namespace
