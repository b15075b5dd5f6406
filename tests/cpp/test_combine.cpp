// flashplus_combine against the oracle: any number of partials, mixed float dtypes, partials
// that saw no key (LSE +inf or -inf, with garbage outputs that must be ignored), rows where no
// partial contributes, strided partials, the optional LSE, and out aliasing partial 0.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "oracle/combine_oracle.h"
#include "support/compare.h"
#include "support/fwd_case.h"
#include "support/host_tensor.h"
#include "support/tensor_access.h"

namespace {

using fptest::HostTensor;

struct CombineConfig {
  int num_partials = 3;
  int64_t batch = 2, seqlen = 5, heads = 3, head_dim = 40;
  flashplus_dtype partial_dtype = FLASHPLUS_DTYPE_FLOAT32;
  flashplus_dtype out_dtype = FLASHPLUS_DTYPE_FLOAT32;
  double infinite_fraction = 0.0;  // share of partial LSE entries set to +inf or -inf
  bool with_lse = true;
  std::string label;
};

void PrintTo(const CombineConfig& config, std::ostream* os) { *os << config.label; }

struct CombineCase {
  std::vector<HostTensor> outs, lses;
  std::vector<flashplus_tensor> out_desc, lse_desc;
  HostTensor out, lse;
  flashplus_combine_args args{};
};

CombineCase make_combine_case(const CombineConfig& cfg, uint64_t seed) {
  CombineCase c;
  fptest::Rng rng(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int p = 0; p < cfg.num_partials; ++p) {
    // Mixed dtypes: every other partial in fp32 when the config asks for 16-bit partials.
    const flashplus_dtype dtype = p % 2 ? FLASHPLUS_DTYPE_FLOAT32 : cfg.partial_dtype;
    HostTensor out =
        HostTensor::contiguous(dtype, {cfg.batch, cfg.seqlen, cfg.heads, cfg.head_dim});
    out.fill_normal(rng);  // also where the LSE says "no key": such values must be ignored
    HostTensor lse = HostTensor::contiguous(FLASHPLUS_DTYPE_FLOAT32, {cfg.batch, cfg.heads, cfg.seqlen});
    lse.fill_uniform(rng, -4.0, 4.0);
    for (int64_t b = 0; b < cfg.batch; ++b)
      for (int64_t h = 0; h < cfg.heads; ++h)
        for (int64_t s = 0; s < cfg.seqlen; ++s)
          if (uniform(rng) < cfg.infinite_fraction)
            lse.set({b, h, s}, (uniform(rng) < 0.5 ? 1 : -1) * std::numeric_limits<double>::infinity());
    c.outs.push_back(out);
    c.lses.push_back(lse);
  }
  for (int p = 0; p < cfg.num_partials; ++p) {
    c.out_desc.push_back(c.outs[p].abi());
    c.lse_desc.push_back(c.lses[p].abi());
  }
  c.out = HostTensor::contiguous(cfg.out_dtype, {cfg.batch, cfg.seqlen, cfg.heads, cfg.head_dim});
  c.out.poison();
  if (cfg.with_lse) {
    c.lse = HostTensor::contiguous(FLASHPLUS_DTYPE_FLOAT32, {cfg.batch, cfg.heads, cfg.seqlen});
    c.lse.poison();
  }
  flashplus_combine_args_init(&c.args);
  c.args.num_partials = cfg.num_partials;
  c.args.out_partials = c.out_desc.data();
  c.args.lse_partials = c.lse_desc.data();
  c.args.out = c.out.abi();
  c.args.lse = c.lse.abi();
  return c;
}

// The merge is a handful of fp32 operations per element, then one rounding to out's dtype.
void check_combine(const flashplus_combine_args& args) {
  const oracle::CombineReference ref = oracle::reference_combine(args);
  const flashplus_status status = flashplus_combine(&args);
  ASSERT_EQ(status, FLASHPLUS_STATUS_OK) << flashplus_status_name(status) << ": "
                                         << flashplus_last_error();
  double out_scale = 0.0, lse_scale = 0.0;
  for (double v : ref.out.values) out_scale = std::max(out_scale, std::fabs(v));
  for (double v : ref.lse.values)
    if (std::isfinite(v)) lse_scale = std::max(lse_scale, std::fabs(v));
  const double out_tolerance = (fptest::unit_roundoff(args.out.dtype) + 1e-5) * out_scale;
  EXPECT_TRUE(fptest::all_close("out", fptest::read_tensor(args.out), ref.out, out_tolerance));
  if (args.lse.data) {
    EXPECT_TRUE(fptest::all_close("lse", fptest::read_tensor(args.lse), ref.lse, 1e-5 * lse_scale));
  }
}

class Combine : public ::testing::TestWithParam<CombineConfig> {};

TEST_P(Combine, MatchesOracle) {
  CombineCase c = make_combine_case(GetParam(), 21);
  check_combine(c.args);
}

std::vector<CombineConfig> combine_configs() {
  std::vector<CombineConfig> list;
  auto add = [&](CombineConfig c, const char* label) {
    c.label = label;
    list.push_back(c);
  };
  CombineConfig c;
  add(c, "fp32_three");
  c.num_partials = 1;
  add(c, "fp32_single");
  c.num_partials = 7;
  c.head_dim = 1;
  add(c, "fp32_seven_d1");
  c = CombineConfig{};
  c.partial_dtype = FLASHPLUS_DTYPE_FLOAT16;
  c.out_dtype = FLASHPLUS_DTYPE_FLOAT16;
  add(c, "fp16_mixed_partials");
  c.partial_dtype = FLASHPLUS_DTYPE_BFLOAT16;
  c.out_dtype = FLASHPLUS_DTYPE_BFLOAT16;
  c.head_dim = 256;
  add(c, "bf16_mixed_partials_d256");
  c = CombineConfig{};
  c.out_dtype = FLASHPLUS_DTYPE_BFLOAT16;
  add(c, "fp32_partials_bf16_out");
  c = CombineConfig{};
  c.infinite_fraction = 0.4;
  c.num_partials = 4;
  add(c, "fp32_infinite_partials");
  c.infinite_fraction = 1.0;  // nobody contributes anywhere: out 0, lse +inf
  add(c, "fp32_all_infinite");
  c = CombineConfig{};
  c.num_partials = 2;
  c.infinite_fraction = 0.5;
  c.with_lse = false;
  c.out_dtype = FLASHPLUS_DTYPE_FLOAT16;
  add(c, "fp16_out_without_lse");
  return list;
}

INSTANTIATE_TEST_SUITE_P(Configs, Combine, ::testing::ValuesIn(combine_configs()),
                         [](const ::testing::TestParamInfo<CombineConfig>& info) {
                           return info.param.label;
                         });

TEST(CombineExtra, ZeroHeadDimIsRefusedOrHarmless) {
  // Found by the fuzzer: d = 0 was accepted and the CPU combine then indexed empty vectors
  // (undefined behaviour, visible under -fsanitize=undefined). Either answer below is fine.
  CombineConfig cfg;
  cfg.head_dim = 0;
  CombineCase c = make_combine_case(cfg, 3);
  const flashplus_status status = flashplus_combine(&c.args);
  EXPECT_TRUE(status == FLASHPLUS_STATUS_OK || status == FLASHPLUS_STATUS_INVALID_ARGUMENT)
      << flashplus_status_name(status) << ": " << flashplus_last_error();
}

TEST(CombineExtra, OutAndLseMayAliasPartialZero) {
  for (flashplus_dtype dtype : {FLASHPLUS_DTYPE_FLOAT32, FLASHPLUS_DTYPE_FLOAT16}) {
    CombineConfig cfg;
    cfg.partial_dtype = dtype;
    cfg.infinite_fraction = 0.3;
    CombineCase c = make_combine_case(cfg, 5);
    c.args.out = c.out_desc[0];
    c.args.lse = c.lse_desc[0];
    SCOPED_TRACE(fptest::dtype_name(dtype));
    check_combine(c.args);
  }
}

TEST(CombineExtra, StridedPartialsAndOutput) {
  // Partials stored (b, h, s, d) and viewed as (b, s, h, d); out padded between heads.
  CombineConfig cfg;
  cfg.infinite_fraction = 0.2;
  CombineCase c = make_combine_case(cfg, 8);
  std::vector<HostTensor> permuted;
  for (int p = 0; p < cfg.num_partials; ++p) {
    HostTensor storage = HostTensor::contiguous(
        c.outs[p].dtype(), {cfg.batch, cfg.heads, cfg.seqlen, cfg.head_dim});
    HostTensor view = storage.permute({0, 2, 1, 3});
    view.assign(c.outs[p].values());
    permuted.push_back(view);
    c.out_desc[p] = view.abi();
  }
  HostTensor padded = HostTensor::strided(
      FLASHPLUS_DTYPE_FLOAT32, {cfg.batch, cfg.seqlen, cfg.heads, cfg.head_dim},
      {cfg.seqlen * cfg.heads * 64, cfg.heads * 64, 64, 1});
  padded.poison();
  c.args.out = padded.abi();
  check_combine(c.args);
  EXPECT_EQ(padded.elements_written_outside_view(), 0) << "combine wrote into out's padding";
}

}  // namespace
