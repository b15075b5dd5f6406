// cpu_scores.h — the logit rule of one (sequence, head): scale, softcap, ALiBi and the window.
//
// logit(r, j) = cap(scale * q_r.k_j) - slope * |r + s_k - s_q - j|, visible iff
// r + s_k - s_q - left <= j <= r + s_k - s_q + right (-1 = unbounded). Forward and backward both
// use this one definition, so they can never disagree about a mask.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "problem.h"

namespace flashplus {
namespace cpu {

struct ScoreRule {
  float scale = 1.f;
  float softcap = 0.f;
  float slope = 0.f;
  int64_t window_left = -1, window_right = -1;
  int64_t s_q = 0, s_k = 0;

  static ScoreRule make(const ScoreMods& mods, int64_t batch, int64_t head, int64_t s_q, int64_t s_k) {
    ScoreRule rule;
    rule.scale = mods.softmax_scale;
    rule.softcap = mods.softcap;
    if (mods.alibi_slopes)
      rule.slope = mods.alibi_slopes[batch * mods.alibi_batch_stride + head * mods.alibi_head_stride];
    rule.window_left = mods.window_left;
    rule.window_right = mods.window_right;
    rule.s_q = s_q;
    rule.s_k = s_k;
    return rule;
  }

  // Visible keys of query row r: [lo, hi); empty when lo >= hi.
  void key_range(int64_t r, int64_t& lo, int64_t& hi) const {
    const int64_t diagonal = r + s_k - s_q;
    lo = window_left >= 0 ? std::max<int64_t>(0, diagonal - window_left) : 0;
    hi = window_right >= 0 ? std::min<int64_t>(s_k, diagonal + window_right + 1) : s_k;
    if (hi < lo) hi = lo;
  }

  // Query rows that can see some key in [j0, j1): [lo, hi).
  void query_range(int64_t j0, int64_t j1, int64_t& lo, int64_t& hi) const {
    lo = window_right >= 0 ? std::max<int64_t>(0, j0 - window_right - s_k + s_q) : 0;
    hi = window_left >= 0 ? std::min<int64_t>(s_q, j1 - 1 + window_left - s_k + s_q + 1) : s_q;
    if (hi < lo) hi = lo;
  }

  // dot = q_r . k_j. Also returns tanh(scale * dot / softcap) for the softcap gradient.
  float logit(float dot, int64_t r, int64_t j, float* capped_tanh = nullptr) const {
    float x = dot * scale;
    if (softcap > 0.f) {
      const float t = std::tanh(x / softcap);
      if (capped_tanh) *capped_tanh = t;
      x = softcap * t;
    }
    if (slope != 0.f) x -= slope * static_cast<float>(std::llabs(r + s_k - s_q - j));
    return x;
  }
};

inline float dot_product(const float* a, const float* b, int n) {
  float sum = 0.f;
  for (int i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace cpu
}  // namespace flashplus
