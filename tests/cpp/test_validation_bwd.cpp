// flashplus_bwd refuses every malformed request with a message naming the argument.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "support/bwd_case.h"
#include "support/rejection.h"
#include "support/validation_rule.h"

namespace {

using fptest::HostTensor;

enum Base { kDense, kVarlen };

using BwdFixture = fptest::CaseFixture<fptest::BwdCase>;

BwdFixture make_fixture(int base) {
  fptest::AttentionConfig cfg;
  cfg.batch = 2;
  cfg.s_q = 5;
  cfg.s_k = 8;
  cfg.h_q = 4;
  cfg.h_k = 2;
  cfg.head_dim = 8;
  if (base == kVarlen) {
    cfg.seqlens_q = {3, 2};
    cfg.seqlens_k = {4, 5};
  }
  return BwdFixture{fptest::make_bwd_case(cfg), {}};
}

using BwdRule = fptest::Rule<BwdFixture>;

BwdRule rule(std::string label, std::function<void(BwdFixture&)> mutate,
             std::vector<std::string> names, int base = kDense) {
  return fptest::make_rule<BwdFixture>(std::move(label), std::move(mutate), std::move(names), base);
}

flashplus_tensor& field(flashplus_bwd_args& a, const std::string& name) {
  if (name == "dout") return a.dout;
  if (name == "q") return a.q;
  if (name == "k") return a.k;
  if (name == "v") return a.v;
  if (name == "out") return a.out;
  if (name == "softmax_lse") return a.softmax_lse;
  if (name == "dq") return a.dq;
  if (name == "dk") return a.dk;
  if (name == "dv") return a.dv;
  return a.softmax_d;
}

std::vector<BwdRule> bwd_rules() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<BwdRule> r;
  r.push_back(rule("struct_size_zero", [](BwdFixture& f) { f.a().struct_size = 0; }, {"struct_size"}));
  r.push_back(rule("struct_size_too_small",
                   [](BwdFixture& f) { f.a().struct_size = sizeof(flashplus_bwd_args) - 8; },
                   {"struct_size"}));
  const std::vector<std::string> tensors = {"dout", "q", "k", "v", "out", "softmax_lse",
                                            "dq", "dk", "dv", "softmax_d"};
  for (const std::string& name : tensors) {
    r.push_back(rule(name + "_missing", [name](BwdFixture& f) { field(f.a(), name).data = nullptr; },
                     {name}));
    r.push_back(rule(name + "_last_stride_2", [name](BwdFixture& f) {
                       flashplus_tensor& t = field(f.a(), name);
                       t.strides[t.ndim - 1] = 2;
                     }, {name}));
    r.push_back(rule(name + "_wrong_rank", [name](BwdFixture& f) { field(f.a(), name).ndim = 2; },
                     {name}));
    r.push_back(rule(name + "_on_another_device",
                     [name](BwdFixture& f) { fptest::claim_cuda(field(f.a(), name)); }, {name}));
  }
  for (std::string name : {"dout", "k", "v", "out", "dq", "dk", "dv"})
    r.push_back(rule(name + "_dtype_differs_from_q", [name](BwdFixture& f) {
                       field(f.a(), name).dtype = FLASHPLUS_DTYPE_BFLOAT16;
                     }, {name}));
  for (std::string name : {"softmax_lse", "softmax_d"})
    r.push_back(rule(name + "_not_fp32", [name](BwdFixture& f) {
                       field(f.a(), name).dtype = FLASHPLUS_DTYPE_FLOAT16;
                     }, {name}));
  r.push_back(rule("q_int32", [](BwdFixture& f) {
                     for (flashplus_tensor* t : {&f.a().q, &f.a().k, &f.a().v, &f.a().out,
                                                 &f.a().dout, &f.a().dq, &f.a().dk, &f.a().dv})
                       t->dtype = FLASHPLUS_DTYPE_INT32;
                   }, {"q"}));
  r.push_back(rule("dout_shape_differs", [](BwdFixture& f) { f.a().dout.sizes[1] = 4; }, {"dout"}));
  r.push_back(rule("out_shape_differs", [](BwdFixture& f) { f.a().out.sizes[2] = 2; }, {"out"}));
  r.push_back(rule("dq_shape_differs", [](BwdFixture& f) { f.a().dq.sizes[3] = 4; }, {"dq"}));
  r.push_back(rule("dk_shape_differs", [](BwdFixture& f) { f.a().dk.sizes[2] = 4; }, {"dk"}));
  r.push_back(rule("dv_shape_differs", [](BwdFixture& f) { f.a().dv.sizes[1] = 7; }, {"dv"}));
  r.push_back(rule("k_head_dim_differs", [](BwdFixture& f) { f.a().k.sizes[3] = 16; }, {"k"}));
  r.push_back(rule("v_shape_differs", [](BwdFixture& f) { f.a().v.sizes[1] = 7; }, {"v"}));
  r.push_back(rule("softmax_lse_shape_wrong", [](BwdFixture& f) { f.a().softmax_lse.sizes[1] = 2; },
                   {"softmax_lse"}));
  r.push_back(rule("softmax_d_shape_wrong", [](BwdFixture& f) { f.a().softmax_d.sizes[2] = 6; },
                   {"softmax_d"}));
  r.push_back(rule("heads_not_a_multiple", [](BwdFixture& f) {
                     for (flashplus_tensor* t : {&f.a().k, &f.a().v, &f.a().dk, &f.a().dv})
                       t->sizes[2] = 3;
                   }, {"k", "h_k", "h_q"}));
  r.push_back(rule("head_dim_zero", [](BwdFixture& f) {
                     for (flashplus_tensor* t : {&f.a().q, &f.a().k, &f.a().v, &f.a().out,
                                                 &f.a().dout, &f.a().dq, &f.a().dk, &f.a().dv})
                       t->sizes[3] = 0;
                   }, {"q", "head_dim"}));
  r.push_back(rule("head_dim_257", [](BwdFixture& f) {
                     for (flashplus_tensor* t : {&f.a().q, &f.a().k, &f.a().v, &f.a().out,
                                                 &f.a().dout, &f.a().dq, &f.a().dk, &f.a().dv})
                       t->sizes[3] = 257;
                   }, {"q", "head_dim"}));
  r.push_back(rule("alibi_slopes_wrong_length", [](BwdFixture& f) {
                     f.a().alibi_slopes = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {3});
                   }, {"alibi_slopes"}));
  r.push_back(rule("dropout_p_one", [](BwdFixture& f) { f.a().dropout_p = 1.0f; }, {"dropout_p"}));
  r.push_back(rule("dropout_p_negative", [](BwdFixture& f) { f.a().dropout_p = -0.5f; },
                   {"dropout_p"}));
  r.push_back(rule("dropout_p_nan", [nan](BwdFixture& f) { f.a().dropout_p = nan; }, {"dropout_p"}));
  r.push_back(rule("softcap_negative", [](BwdFixture& f) { f.a().softcap = -0.5f; }, {"softcap"}));
  r.push_back(rule("window_left_below_minus_one", [](BwdFixture& f) { f.a().window_left = -3; },
                   {"window_left"}));
  r.push_back(rule("window_right_below_minus_one", [](BwdFixture& f) { f.a().window_right = -2; },
                   {"window_right"}));
  BwdRule cuda = rule("all_tensors_on_cuda", [](BwdFixture& f) {
    for (flashplus_tensor* t : {&f.a().dout, &f.a().q, &f.a().k, &f.a().v, &f.a().out,
                                &f.a().softmax_lse, &f.a().dq, &f.a().dk, &f.a().dv,
                                &f.a().softmax_d, &f.a().cu_seqlens_q, &f.a().cu_seqlens_k,
                                &f.a().alibi_slopes})
      fptest::claim_cuda(*t);
  }, {});
  cuda.expected = FLASHPLUS_STATUS_NOT_COMPILED;
  r.push_back(cuda);

  // Varlen (lengths q {3, 2}, k {4, 5}).
  r.push_back(rule("cu_seqlens_q_decreasing",
                   [](BwdFixture& f) { f.a().cu_seqlens_q = f.int32({0, 4, 3}); }, {"cu_seqlens_q"},
                   kVarlen));
  r.push_back(rule("cu_seqlens_q_first_not_zero",
                   [](BwdFixture& f) { f.a().cu_seqlens_q = f.int32({2, 3, 5}); }, {"cu_seqlens_q"},
                   kVarlen));
  r.push_back(rule("cu_seqlens_q_last_not_total",
                   [](BwdFixture& f) { f.a().cu_seqlens_q = f.int32({0, 1, 2}); }, {"cu_seqlens_q"},
                   kVarlen));
  r.push_back(rule("cu_seqlens_q_not_int32", [](BwdFixture& f) {
                     f.a().cu_seqlens_q = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {3});
                   }, {"cu_seqlens_q"}, kVarlen));
  r.push_back(rule("cu_seqlens_k_missing", [](BwdFixture& f) { f.a().cu_seqlens_k.data = nullptr; },
                   {"cu_seqlens_k"}, kVarlen));
  r.push_back(rule("cu_seqlens_k_last_not_total",
                   [](BwdFixture& f) { f.a().cu_seqlens_k = f.int32({0, 4, 10}); }, {"cu_seqlens_k"},
                   kVarlen));
  r.push_back(rule("cu_seqlens_k_wrong_length",
                   [](BwdFixture& f) { f.a().cu_seqlens_k = f.int32({0, 9}); }, {"cu_seqlens_k"},
                   kVarlen));
  r.push_back(rule("max_seqlen_q_below_longest", [](BwdFixture& f) { f.a().max_seqlen_q = 1; },
                   {"max_seqlen_q"}, kVarlen));
  r.push_back(rule("varlen_softmax_d_dense_shape", [](BwdFixture& f) {
                     f.a().softmax_d = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {2, 4, 3});
                   }, {"softmax_d"}, kVarlen));
  return r;
}

class BwdRejects : public ::testing::TestWithParam<BwdRule> {};

TEST_P(BwdRejects, Rule) {
  const BwdRule& r = GetParam();
  if (r.expected == FLASHPLUS_STATUS_NOT_COMPILED && fptest::cuda_compiled())
    GTEST_SKIP() << "the CUDA backend is compiled in";
  BwdFixture f = make_fixture(r.base);
  ASSERT_EQ(flashplus_bwd(&f.a()), FLASHPLUS_STATUS_OK) << "baseline: " << flashplus_last_error();
  r.mutate(f);
  EXPECT_TRUE(fptest::rejected(flashplus_bwd(&f.a()), r.expected, r.names));
}

INSTANTIATE_TEST_SUITE_P(Bwd, BwdRejects, ::testing::ValuesIn(bwd_rules()), fptest::RuleName());

TEST(BwdRejectsNull, NullArgs) {
  EXPECT_TRUE(fptest::invalid(flashplus_bwd(nullptr), {"args"}));
}

}  // namespace
