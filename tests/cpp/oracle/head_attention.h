// head_attention.h — attention of one (sequence, query head), materialising the full score matrix.
//
// Everything the header defines about one head lives here, spelled out per entry: the logit rule
// (scale, softcap, then ALiBi), the visibility rule (bottom-right aligned window), the empty-row
// rule (out 0, LSE +inf), dropout after normalisation, and the backward of all of it.
#pragma once

#include <cstdint>
#include <vector>

#include "oracle/rounding.h"

namespace oracle {

struct LogitRule {
  double softmax_scale = 1.0;
  double softcap = 0.0;           // 0 = off
  bool has_alibi = false;
  double alibi_slope = 0.0;
  int64_t window_left = -1;       // -1 = unbounded
  int64_t window_right = -1;      // -1 = unbounded; causal is window_right = 0
};

// Key j is visible to query i iff i + s_k - s_q - left <= j <= i + s_k - s_q + right.
bool key_visible(const LogitRule& rule, int64_t i, int64_t j, int64_t s_q, int64_t s_k);

// One head's inputs, row-major: q (s_q, d), k and v (s_k, d).
struct HeadInputs {
  int64_t s_q = 0, s_k = 0, head_dim = 0;
  std::vector<double> q, k, v;
};

// Dropout of one head: keep (s_q, s_k), empty when dropout is off.
struct HeadDropout {
  double p = 0.0;
  std::vector<unsigned char> keep;
};

struct HeadForward {
  std::vector<unsigned char> visible;  // (s_q, s_k)
  std::vector<double> capped_tanh;     // tanh(x / softcap) where softcap is on, for the backward
  std::vector<double> p;               // normalised probabilities, 0 where not visible
  std::vector<double> p_dropped;       // p after the keep-mask and the 1 / (1 - p) scaling
  std::vector<double> out;             // (s_q, d)
  std::vector<double> lse;             // (s_q); +inf for a row that sees no key
};

HeadForward head_forward(const HeadInputs& inputs, const LogitRule& rule,
                         const HeadDropout& dropout, const Rounding& round);

struct HeadGradients {
  std::vector<double> dq;  // (s_q, d)
  std::vector<double> dk;  // (s_k, d)
  std::vector<double> dv;  // (s_k, d)
  // dq and dk with every term taken in absolute value: P (|dP| + |D|) |k| and likewise for q.
  // dS = P (dP - D) cancels exactly when a row sees one key, so |dq| can be 0 while the terms
  // an fp32 kernel sums (and rounds) are O(1); these give the scale that rounding works at.
  std::vector<double> dq_magnitude;
  std::vector<double> dk_magnitude;
};

// Gradients of sum(dout * out) through head_forward; `row_dot` is D_i = dout_i . out_i.
HeadGradients head_backward(const HeadInputs& inputs, const LogitRule& rule,
                            const HeadDropout& dropout, const HeadForward& forward,
                            const std::vector<double>& dout, const std::vector<double>& row_dot,
                            const Rounding& round);

}  // namespace oracle
