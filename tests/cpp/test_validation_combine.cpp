// flashplus_combine refuses every malformed request with a message naming the argument.
#include <gtest/gtest.h>

#include <limits>

#include "support/host_tensor.h"
#include "support/rejection.h"
#include "support/validation_rule.h"

namespace {

using fptest::HostTensor;

// Two partials (b 2, s 3, h 2, d 8), fp32, with LSEs; out fp16, lse fp32.
struct CombineFixture {
  std::vector<HostTensor> tensors;
  std::vector<flashplus_tensor> outs, lses;
  flashplus_combine_args args{};

  flashplus_tensor tensor(flashplus_dtype dtype, std::vector<int64_t> sizes) {
    tensors.push_back(HostTensor::contiguous(dtype, std::move(sizes)));
    fptest::Rng rng(tensors.size());
    tensors.back().fill_normal(rng);
    return tensors.back().abi();
  }
};

CombineFixture make_fixture() {
  CombineFixture f;
  for (int p = 0; p < 2; ++p) {
    f.outs.push_back(f.tensor(FLASHPLUS_DTYPE_FLOAT32, {2, 3, 2, 8}));
    f.lses.push_back(f.tensor(FLASHPLUS_DTYPE_FLOAT32, {2, 2, 3}));
  }
  flashplus_combine_args_init(&f.args);
  f.args.num_partials = 2;
  f.args.out_partials = f.outs.data();
  f.args.lse_partials = f.lses.data();
  f.args.out = f.tensor(FLASHPLUS_DTYPE_FLOAT16, {2, 3, 2, 8});
  f.args.lse = f.tensor(FLASHPLUS_DTYPE_FLOAT32, {2, 2, 3});
  return f;
}

using CombineRule = fptest::Rule<CombineFixture>;

CombineRule rule(std::string label, std::function<void(CombineFixture&)> mutate,
                 std::vector<std::string> names) {
  return fptest::make_rule<CombineFixture>(std::move(label), std::move(mutate), std::move(names));
}

std::vector<CombineRule> combine_rules() {
  std::vector<CombineRule> r;
  r.push_back(rule("struct_size_zero", [](CombineFixture& f) { f.args.struct_size = 0; },
                   {"struct_size"}));
  r.push_back(rule("struct_size_too_small", [](CombineFixture& f) {
                     f.args.struct_size = sizeof(flashplus_combine_args) - 8;
                   }, {"struct_size"}));
  r.push_back(rule("num_partials_zero", [](CombineFixture& f) { f.args.num_partials = 0; },
                   {"num_partials"}));
  r.push_back(rule("num_partials_negative", [](CombineFixture& f) { f.args.num_partials = -2; },
                   {"num_partials"}));
  r.push_back(rule("out_partials_null", [](CombineFixture& f) { f.args.out_partials = nullptr; },
                   {"out_partials"}));
  r.push_back(rule("lse_partials_null", [](CombineFixture& f) { f.args.lse_partials = nullptr; },
                   {"lse_partials"}));
  r.push_back(rule("out_partial_data_missing", [](CombineFixture& f) { f.outs[1].data = nullptr; },
                   {"out_partials"}));
  r.push_back(rule("lse_partial_data_missing", [](CombineFixture& f) { f.lses[0].data = nullptr; },
                   {"lse_partials"}));
  r.push_back(rule("out_partial_shape_mismatch", [](CombineFixture& f) { f.outs[1].sizes[1] = 2; },
                   {"out_partials"}));
  r.push_back(rule("out_partial_head_dim_mismatch",
                   [](CombineFixture& f) { f.outs[1].sizes[3] = 4; }, {"out_partials"}));
  r.push_back(rule("lse_partial_shape_mismatch", [](CombineFixture& f) { f.lses[1].sizes[2] = 2; },
                   {"lse_partials"}));
  r.push_back(rule("lse_partial_not_fp32",
                   [](CombineFixture& f) { f.lses[1].dtype = FLASHPLUS_DTYPE_FLOAT16; },
                   {"lse_partials"}));
  r.push_back(rule("out_partial_int32",
                   [](CombineFixture& f) { f.outs[0].dtype = FLASHPLUS_DTYPE_INT32; },
                   {"out_partials"}));
  r.push_back(rule("out_partial_wrong_rank", [](CombineFixture& f) { f.outs[0].ndim = 3; },
                   {"out_partials"}));
  r.push_back(rule("out_partial_last_stride_2",
                   [](CombineFixture& f) { f.outs[1].strides[3] = 2; }, {"out_partials"}));
  // Strides whose reach overflows int64 (found by the fuzzer: the aliasing check overflowed).
  r.push_back(rule("out_partial_stride_most_negative", [](CombineFixture& f) {
                     f.outs[1].strides[1] = std::numeric_limits<int64_t>::min();
                   }, {"out_partials"}));
  r.push_back(rule("out_stride_reach_overflows", [](CombineFixture& f) {
                     f.args.out.strides[1] = std::numeric_limits<int64_t>::max() / 2;
                   }, {"out"}));
  r.push_back(rule("lse_partial_stride_reach_overflows", [](CombineFixture& f) {
                     f.lses[0].strides[2] = 1;
                     f.lses[0].strides[1] = std::numeric_limits<int64_t>::max() / 2;
                   }, {"lse_partials"}));
  r.push_back(rule("out_missing", [](CombineFixture& f) { f.args.out.data = nullptr; }, {"out"}));
  r.push_back(rule("out_shape_mismatch", [](CombineFixture& f) { f.args.out.sizes[2] = 1; },
                   {"out"}));
  r.push_back(rule("out_int32", [](CombineFixture& f) { f.args.out.dtype = FLASHPLUS_DTYPE_INT32; },
                   {"out"}));
  r.push_back(rule("out_last_stride_2", [](CombineFixture& f) { f.args.out.strides[3] = 2; },
                   {"out"}));
  r.push_back(rule("lse_shape_mismatch", [](CombineFixture& f) { f.args.lse.sizes[0] = 1; },
                   {"lse"}));
  r.push_back(rule("lse_not_fp32", [](CombineFixture& f) { f.args.lse.dtype = FLASHPLUS_DTYPE_BFLOAT16; },
                   {"lse"}));
  r.push_back(rule("out_partial_on_another_device",
                   [](CombineFixture& f) { fptest::claim_cuda(f.outs[1]); }, {"out_partials"}));
  r.push_back(rule("lse_partial_on_another_device",
                   [](CombineFixture& f) { fptest::claim_cuda(f.lses[0]); }, {"lse_partials"}));
  r.push_back(rule("out_on_another_device", [](CombineFixture& f) { fptest::claim_cuda(f.args.out); },
                   {"out"}));
  CombineRule cuda = rule("all_tensors_on_cuda", [](CombineFixture& f) {
    for (flashplus_tensor& t : f.outs) fptest::claim_cuda(t);
    for (flashplus_tensor& t : f.lses) fptest::claim_cuda(t);
    fptest::claim_cuda(f.args.out);
    fptest::claim_cuda(f.args.lse);
  }, {});
  cuda.expected = FLASHPLUS_STATUS_NOT_COMPILED;
  r.push_back(cuda);
  return r;
}

class CombineRejects : public ::testing::TestWithParam<CombineRule> {};

TEST_P(CombineRejects, Rule) {
  const CombineRule& r = GetParam();
  if (r.expected == FLASHPLUS_STATUS_NOT_COMPILED && fptest::cuda_compiled())
    GTEST_SKIP() << "the CUDA backend is compiled in";
  CombineFixture f = make_fixture();
  ASSERT_EQ(flashplus_combine(&f.args), FLASHPLUS_STATUS_OK) << "baseline: " << flashplus_last_error();
  r.mutate(f);
  EXPECT_TRUE(fptest::rejected(flashplus_combine(&f.args), r.expected, r.names));
}

INSTANTIATE_TEST_SUITE_P(Combine, CombineRejects, ::testing::ValuesIn(combine_rules()),
                         fptest::RuleName());

TEST(CombineRejectsNull, NullArgs) {
  EXPECT_TRUE(fptest::invalid(flashplus_combine(nullptr), {"args"}));
}

}  // namespace
