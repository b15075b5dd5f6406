#include "oracle/head_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace oracle {

bool key_visible(const LogitRule& rule, int64_t i, int64_t j, int64_t s_q, int64_t s_k) {
  if (j < 0 || j >= s_k) return false;
  const int64_t diagonal = i + s_k - s_q;  // the key aligned with query i (bottom-right)
  if (rule.window_left >= 0 && j < diagonal - rule.window_left) return false;
  if (rule.window_right >= 0 && j > diagonal + rule.window_right) return false;
  return true;
}

static double dot(const double* a, const double* b, int64_t n) {
  double sum = 0.0;
  for (int64_t f = 0; f < n; ++f) sum += a[f] * b[f];
  return sum;
}

HeadForward head_forward(const HeadInputs& in, const LogitRule& rule, const HeadDropout& dropout,
                         const Rounding& round) {
  const int64_t s_q = in.s_q, s_k = in.s_k, d = in.head_dim;
  HeadForward fw;
  fw.visible.assign(s_q * s_k, 0);
  fw.capped_tanh.assign(s_q * s_k, 0.0);
  fw.p.assign(s_q * s_k, 0.0);
  fw.p_dropped.assign(s_q * s_k, 0.0);
  fw.out.assign(s_q * d, 0.0);
  fw.lse.assign(s_q, std::numeric_limits<double>::infinity());
  const bool has_dropout = !dropout.keep.empty();
  std::vector<double> logits(s_k);

  for (int64_t i = 0; i < s_q; ++i) {
    double row_max = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < s_k; ++j) {
      if (!key_visible(rule, i, j, s_q, s_k)) continue;
      fw.visible[i * s_k + j] = 1;
      double x = round(rule.softmax_scale * dot(&in.q[i * d], &in.k[j * d], d));
      if (rule.softcap > 0.0) {
        const double t = std::tanh(x / rule.softcap);
        fw.capped_tanh[i * s_k + j] = t;
        x = round(rule.softcap * t);
      }
      // ALiBi comes after the softcap: the cap bounds q.k only, never the position bias.
      if (rule.has_alibi) x = round(x - rule.alibi_slope * std::fabs(double(i + s_k - s_q - j)));
      logits[j] = x;
      row_max = std::max(row_max, x);
    }
    if (row_max == -std::numeric_limits<double>::infinity()) continue;  // sees no key

    double sum = 0.0;
    for (int64_t j = 0; j < s_k; ++j)
      if (fw.visible[i * s_k + j]) sum += std::exp(logits[j] - row_max);
    const double lse = row_max + std::log(sum);
    fw.lse[i] = lse;
    for (int64_t j = 0; j < s_k; ++j) {
      if (!fw.visible[i * s_k + j]) continue;
      const double p = round(std::exp(logits[j] - lse));
      fw.p[i * s_k + j] = p;
      if (!has_dropout) fw.p_dropped[i * s_k + j] = p;
      else if (dropout.keep[i * s_k + j]) fw.p_dropped[i * s_k + j] = round(p / (1.0 - dropout.p));
    }
    for (int64_t f = 0; f < d; ++f) {
      double acc = 0.0;
      for (int64_t j = 0; j < s_k; ++j) acc += fw.p_dropped[i * s_k + j] * in.v[j * d + f];
      fw.out[i * d + f] = round(acc);
    }
  }
  return fw;
}

HeadGradients head_backward(const HeadInputs& in, const LogitRule& rule,
                            const HeadDropout& dropout, const HeadForward& fw,
                            const std::vector<double>& dout, const std::vector<double>& row_dot,
                            const Rounding& round) {
  const int64_t s_q = in.s_q, s_k = in.s_k, d = in.head_dim;
  const bool has_dropout = !dropout.keep.empty();
  HeadGradients g;
  g.dq.assign(s_q * d, 0.0);
  g.dk.assign(s_k * d, 0.0);
  g.dv.assign(s_k * d, 0.0);
  g.dq_magnitude.assign(s_q * d, 0.0);
  g.dk_magnitude.assign(s_k * d, 0.0);

  // d(loss)/d(pre-scale score) per entry: softmax backward, then through the dropout mask and the
  // softcap's tanh. ALiBi is an additive constant and contributes no gradient.
  std::vector<double> dscore(s_q * s_k, 0.0), dscore_magnitude(s_q * s_k, 0.0);
  for (int64_t i = 0; i < s_q; ++i) {
    for (int64_t j = 0; j < s_k; ++j) {
      if (!fw.visible[i * s_k + j]) continue;
      double dp = round(dot(&dout[i * d], &in.v[j * d], d));
      if (has_dropout) dp = dropout.keep[i * s_k + j] ? round(dp / (1.0 - dropout.p)) : 0.0;
      double ds = round(fw.p[i * s_k + j] * (dp - row_dot[i]));
      double magnitude = fw.p[i * s_k + j] * (std::fabs(dp) + std::fabs(row_dot[i]));
      if (rule.softcap > 0.0) {
        const double t = fw.capped_tanh[i * s_k + j];
        ds = round(ds * (1.0 - t * t));
        magnitude *= 1.0 - t * t;
      }
      dscore[i * s_k + j] = ds;
      dscore_magnitude[i * s_k + j] = magnitude;
    }
  }
  const double scale_magnitude = std::fabs(rule.softmax_scale);
  for (int64_t i = 0; i < s_q; ++i)
    for (int64_t f = 0; f < d; ++f) {
      double acc = 0.0, magnitude = 0.0;
      for (int64_t j = 0; j < s_k; ++j) {
        acc += dscore[i * s_k + j] * in.k[j * d + f];
        magnitude += dscore_magnitude[i * s_k + j] * std::fabs(in.k[j * d + f]);
      }
      g.dq[i * d + f] = round(rule.softmax_scale * acc);
      g.dq_magnitude[i * d + f] = scale_magnitude * magnitude;
    }
  for (int64_t j = 0; j < s_k; ++j)
    for (int64_t f = 0; f < d; ++f) {
      double acc_k = 0.0, acc_v = 0.0, magnitude = 0.0;
      for (int64_t i = 0; i < s_q; ++i) {
        acc_k += dscore[i * s_k + j] * in.q[i * d + f];
        acc_v += fw.p_dropped[i * s_k + j] * dout[i * d + f];
        magnitude += dscore_magnitude[i * s_k + j] * std::fabs(in.q[i * d + f]);
      }
      g.dk[j * d + f] = round(rule.softmax_scale * acc_k);
      g.dk_magnitude[j * d + f] = scale_magnitude * magnitude;
      g.dv[j * d + f] = round(acc_v);
    }
  return g;
}

}  // namespace oracle
