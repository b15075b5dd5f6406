// Checks of the oracle itself, independent of the library: closed-form cases, the mask geometry
// of the header, and a finite-difference check of every gradient the backward oracle produces.
// If these fail, no other test's verdict can be trusted.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "oracle/combine_oracle.h"
#include "oracle/head_attention.h"
#include "support/host_tensor.h"

namespace {

using namespace oracle;

HeadInputs random_head(int64_t s_q, int64_t s_k, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  HeadInputs in;
  in.s_q = s_q;
  in.s_k = s_k;
  in.head_dim = d;
  for (int64_t n = 0; n < s_q * d; ++n) in.q.push_back(normal(rng));
  for (int64_t n = 0; n < s_k * d; ++n) in.k.push_back(normal(rng));
  for (int64_t n = 0; n < s_k * d; ++n) in.v.push_back(normal(rng));
  return in;
}

TEST(OracleSelf, SingleKeyGivesItsValueAndLogit) {
  HeadInputs in = random_head(1, 1, 3, 1);
  LogitRule rule;
  rule.softmax_scale = 0.7;
  const HeadForward fw = head_forward(in, rule, {}, Rounding::exact());
  for (int f = 0; f < 3; ++f) EXPECT_DOUBLE_EQ(fw.out[f], in.v[f]);
  const double logit = 0.7 * (in.q[0] * in.k[0] + in.q[1] * in.k[1] + in.q[2] * in.k[2]);
  EXPECT_NEAR(fw.lse[0], logit, 1e-14);
}

TEST(OracleSelf, CausalIsBottomRightAligned) {
  LogitRule causal;
  causal.window_right = 0;
  // s_q = 3, s_k = 5: the last query sees every key, the first sees keys 0..2.
  EXPECT_TRUE(key_visible(causal, 0, 2, 3, 5));
  EXPECT_FALSE(key_visible(causal, 0, 3, 3, 5));
  EXPECT_TRUE(key_visible(causal, 2, 4, 3, 5));
  // s_q = 5, s_k = 3: queries 0 and 1 see no key at all.
  EXPECT_FALSE(key_visible(causal, 1, 0, 5, 3));
  EXPECT_TRUE(key_visible(causal, 2, 0, 5, 3));
  EXPECT_FALSE(key_visible(causal, 2, 1, 5, 3));
}

TEST(OracleSelf, WindowBounds) {
  LogitRule window;
  window.window_left = 2;
  window.window_right = 1;
  // s_q = s_k = 10: query 5 sees keys 3..6.
  for (int j = 0; j < 10; ++j) EXPECT_EQ(key_visible(window, 5, j, 10, 10), j >= 3 && j <= 6) << j;
}

TEST(OracleSelf, EmptyRowGivesZeroOutAndInfiniteLse) {
  HeadInputs in = random_head(4, 2, 5, 2);
  LogitRule causal;
  causal.window_right = 0;
  const HeadForward fw = head_forward(in, causal, {}, Rounding::exact());
  EXPECT_EQ(fw.lse[0], std::numeric_limits<double>::infinity());
  EXPECT_EQ(fw.lse[1], std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isfinite(fw.lse[2]));
  for (int f = 0; f < 5; ++f) EXPECT_EQ(fw.out[f], 0.0);
}

TEST(OracleSelf, SoftcapAppliesBeforeAlibi) {
  HeadInputs in = random_head(1, 3, 4, 3);
  LogitRule rule;
  rule.softmax_scale = 2.0;
  rule.softcap = 0.5;
  rule.has_alibi = true;
  rule.alibi_slope = 0.25;
  const HeadForward fw = head_forward(in, rule, {}, Rounding::exact());
  double logits[3], max_logit = -1e300;
  for (int j = 0; j < 3; ++j) {
    double dot = 0;
    for (int f = 0; f < 4; ++f) dot += in.q[f] * in.k[j * 4 + f];
    // Query 0 of s_q = 1 sits at key position 2 (bottom-right): distance |0 + 3 - 1 - j|.
    logits[j] = 0.5 * std::tanh(2.0 * dot / 0.5) - 0.25 * std::fabs(2.0 - j);
    max_logit = std::max(max_logit, logits[j]);
  }
  double sum = 0;
  for (double logit : logits) sum += std::exp(logit - max_logit);
  EXPECT_NEAR(fw.lse[0], max_logit + std::log(sum), 1e-14);
}

// loss = sum(dout * out); each gradient entry against a central difference.
void expect_gradients_match_finite_differences(const LogitRule& rule, const HeadDropout& dropout,
                                               int64_t s_q, int64_t s_k, int64_t d) {
  const HeadInputs in = random_head(s_q, s_k, d, 4);
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  std::vector<double> dout(s_q * d);
  for (double& value : dout) value = normal(rng);
  auto loss = [&](const HeadInputs& x) {
    const HeadForward fw = head_forward(x, rule, dropout, Rounding::exact());
    double total = 0;
    for (size_t n = 0; n < fw.out.size(); ++n) total += dout[n] * fw.out[n];
    return total;
  };
  const HeadForward fw = head_forward(in, rule, dropout, Rounding::exact());
  std::vector<double> row_dot(s_q, 0.0);
  for (int64_t i = 0; i < s_q; ++i)
    for (int64_t f = 0; f < d; ++f) row_dot[i] += dout[i * d + f] * fw.out[i * d + f];
  const HeadGradients g = head_backward(in, rule, dropout, fw, dout, row_dot, Rounding::exact());

  const double step = 1e-6;
  auto check = [&](std::vector<double> HeadInputs::*member, const std::vector<double>& grad,
                   const char* name) {
    for (size_t n = 0; n < grad.size(); ++n) {
      HeadInputs plus = in, minus = in;
      (plus.*member)[n] += step;
      (minus.*member)[n] -= step;
      const double numeric = (loss(plus) - loss(minus)) / (2 * step);
      ASSERT_NEAR(grad[n], numeric, 1e-6 * (1 + std::fabs(numeric))) << name << "[" << n << "]";
    }
  };
  check(&HeadInputs::q, g.dq, "dq");
  check(&HeadInputs::k, g.dk, "dk");
  check(&HeadInputs::v, g.dv, "dv");
}

TEST(OracleSelf, GradientsPlain) {
  LogitRule rule;
  rule.softmax_scale = 0.6;
  expect_gradients_match_finite_differences(rule, {}, 4, 5, 3);
}

TEST(OracleSelf, GradientsSoftcapAlibiWindow) {
  LogitRule rule;
  rule.softmax_scale = 1.3;
  rule.softcap = 0.8;
  rule.has_alibi = true;
  rule.alibi_slope = 0.3;
  rule.window_left = 2;
  rule.window_right = 0;
  expect_gradients_match_finite_differences(rule, {}, 6, 4, 3);  // includes rows with no key
}

TEST(OracleSelf, GradientsWithDropout) {
  LogitRule rule;
  rule.softmax_scale = 0.9;
  HeadDropout dropout;
  dropout.p = 0.3;
  dropout.keep = {1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1};  // (4, 5)
  expect_gradients_match_finite_differences(rule, dropout, 4, 5, 3);
}

TEST(OracleSelf, CombineOfKeySplitsEqualsFullAttention) {
  // Attention over keys [0, 7) equals the LSE-merge of attention over [0, 3) and [3, 7).
  const HeadInputs full = random_head(2, 7, 3, 6);
  LogitRule rule;
  rule.softmax_scale = 0.5;
  HeadInputs first = full, second = full;
  first.s_k = 3;
  first.k.resize(9);
  first.v.resize(9);
  second.s_k = 4;
  second.k.erase(second.k.begin(), second.k.begin() + 9);
  second.v.erase(second.v.begin(), second.v.begin() + 9);
  const HeadForward whole = head_forward(full, rule, {}, Rounding::exact());
  const HeadForward parts[2] = {head_forward(first, rule, {}, Rounding::exact()),
                                head_forward(second, rule, {}, Rounding::exact())};

  fptest::HostTensor outs[2], lses[2];
  flashplus_tensor out_desc[2], lse_desc[2];
  for (int p = 0; p < 2; ++p) {
    outs[p] = fptest::HostTensor::contiguous(FLASHPLUS_DTYPE_FLOAT32, {1, 2, 1, 3});
    lses[p] = fptest::HostTensor::contiguous(FLASHPLUS_DTYPE_FLOAT32, {1, 1, 2});
    for (int64_t i = 0; i < 2; ++i) {
      lses[p].set({0, 0, i}, parts[p].lse[i]);
      for (int64_t f = 0; f < 3; ++f) outs[p].set({0, i, 0, f}, parts[p].out[i * 3 + f]);
    }
    out_desc[p] = outs[p].abi();
    lse_desc[p] = lses[p].abi();
  }
  flashplus_combine_args args{};
  args.num_partials = 2;
  args.out_partials = out_desc;
  args.lse_partials = lse_desc;
  const CombineReference merged = reference_combine(args);
  for (int64_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(merged.lse.at({0, 0, i}), whole.lse[i], 1e-6);
    for (int64_t f = 0; f < 3; ++f)
      EXPECT_NEAR(merged.out.at({0, i, 0, f}), whole.out[i * 3 + f], 1e-6);
  }
}

}  // namespace
