// mask.cuh — the logit rule: scale, softcap, ALiBi and the causal / sliding-window mask.
//
// For query row i and key j of one sequence (both 0-based within it), with diagonal
// offset o = s_k - s_q (bottom-right alignment):
//   x = scale * q.k;  if softcap: x = softcap * tanh(x / softcap);  x -= slope * |i + o - j|
//   key j is visible iff j < s_k and  i + o - left <= j <= i + o + right  (-1 = unbounded).
// Causal is window (left, 0), folded in by validation, so one rule covers both.
//
// The rule is a value type built once per CTA. The kernels work in the base-2 domain
// (scores multiplied by log2(e)) so that softmax uses exp2; to_log2_logit() returns that.
// Each modifier is a runtime flag: a uniform branch per tile costs far less than the extra
// template instantiations (and compile time) a bool per feature would.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "fwd_params.h"

namespace flashplus {
namespace kernels {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Runs body(std::true_type{}) when softcap is on, body(std::false_type{}) otherwise: kernels pick
// their softcap policy once per launch, at the top (see the forward's apply_logit_rule for why it
// is not a runtime flag inside the tile code). The body must be an always_inline lambda: ptxas
// otherwise compiled the whole tile code as a called function (kernel parameters then read
// through a pointer, more spills), which cost the forward ~9% and the dQ kernel ~30%.
template <typename Body>
__device__ __forceinline__ void with_softcap_policy(float softcap, Body&& body) {
  if (softcap > 0.f) {
    body(std::true_type{});
  } else {
    body(std::false_type{});
  }
}

struct LogitRule {
  float scale_log2 = 0.f;     // softmax_scale * log2(e): the whole rule without softcap or ALiBi
  float softcap_inner = 0.f;  // softmax_scale / softcap
  float softcap_outer = 0.f;  // softcap * log2(e)
  float slope_log2 = 0.f;     // ALiBi slope * log2(e)
  bool has_softcap = false;
  bool has_alibi = false;
  int diagonal = 0;           // s_k - s_q

  __device__ __forceinline__ LogitRule(const FwdParams& p, int b, int h, int seqlen_q, int seqlen_k) {
    scale_log2 = p.softmax_scale * kLog2e;
    has_softcap = p.softcap > 0.f;
    if (has_softcap) {
      softcap_inner = p.softmax_scale / p.softcap;
      softcap_outer = p.softcap * kLog2e;
    }
    if (p.alibi_slopes) {
      const float slope = p.alibi_slopes[b * p.alibi_batch_stride + h * p.alibi_head_stride];
      slope_log2 = slope * kLog2e;
      has_alibi = slope != 0.f;
    }
    diagonal = seqlen_k - seqlen_q;
  }

  // dot = q_i . k_j in fp32; returns log2(e) * logit. Precise tanhf: tanh.approx's 2^-11
  // relative error would be ~1% of a softcap of 30 in the exponent.
  __device__ __forceinline__ float to_log2_logit(float dot, int i, int j) const {
    float x = has_softcap ? softcap_outer * tanhf(dot * softcap_inner) : dot * scale_log2;
    if (has_alibi) x -= slope_log2 * static_cast<float>(abs(i + diagonal - j));
    return x;
  }
};

struct WindowMask {
  int seqlen_k = 0;
  int diagonal = 0;      // s_k - s_q
  int window_left = -1;  // -1 = unbounded
  int window_right = -1;

  __device__ __forceinline__ WindowMask(const FwdParams& p, int seqlen_q, int seqlen_k_)
      : seqlen_k(seqlen_k_), diagonal(seqlen_k_ - seqlen_q), window_left(p.window_left),
        window_right(p.window_right) {}

  // One expression without early returns: the caller evaluates it for every element of a tile,
  // and each early return became a divergent branch (BSSY / BSYNC pair) per element.
  __device__ __forceinline__ bool visible(int i, int j) const {
    const int distance = j - (i + diagonal);
    return (j < seqlen_k) & ((window_right < 0) | (distance <= window_right)) &
           ((window_left < 0) | (distance >= -window_left));
  }

  // The keys [lo, hi) query i sees: visible(i, j) == (lo <= j && j < hi). Per row once, so that a
  // tile's per-element test is two compares instead of visible()'s six operations. Written without
  // sums that could overflow for huge windows.
  __device__ __forceinline__ void visible_keys(int i, int& lo, int& hi) const {
    const int center = i + diagonal;  // the key on query i's diagonal
    hi = window_right >= 0 && window_right < seqlen_k - center - 1 ? center + window_right + 1 : seqlen_k;
    lo = window_left >= 0 && window_left < center ? center - window_left : 0;
  }

  // The queries [lo, hi) that see key j: visible(i, j) == (lo <= i && i < hi) for i >= 0. The
  // backward's transposed tiles (keys as rows, sm90) test per key row what visible_keys tests per
  // query row. In 64 bits: j - diagonal - window_right may leave the int range for huge windows.
  __device__ __forceinline__ void visible_queries(int j, int& lo, int& hi) const {
    const int64_t center = static_cast<int64_t>(j) - diagonal;  // the query on key j's diagonal
    const int64_t first = window_right >= 0 ? center - window_right : 0;
    const int64_t end = window_left >= 0 ? center + window_left + 1 : INT32_MAX;
    lo = static_cast<int>(first < 0 ? 0 : first > INT32_MAX ? INT32_MAX : first);
    hi = j < seqlen_k ? static_cast<int>(end < 0 ? 0 : end > INT32_MAX ? INT32_MAX : end) : 0;
  }

  // True when every (i, j) of rows [m0, m1) x keys [n0, n1) is visible, so the tile needs no
  // per-element mask (the common interior tile).
  __device__ __forceinline__ bool all_visible(int m0, int m1, int n0, int n1) const {
    if (n1 > seqlen_k) return false;
    if (window_right >= 0 && (n1 - 1) - (m0 + diagonal) > window_right) return false;
    if (window_left >= 0 && n0 - (m1 - 1 + diagonal) < -window_left) return false;
    return true;
  }
};

}  // namespace kernels
}  // namespace flashplus
