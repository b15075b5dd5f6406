// cpu_merge.h — merging partial softmax results by their LSE (split-KV and the combine entry point).
//
// A partial with LSE = +-inf saw no key and gets weight 0. With no contributing partial the
// result is out = 0, lse = +inf (the forward's convention for a row that sees nothing).
#pragma once

#include <cmath>
#include <limits>

namespace flashplus {
namespace cpu {

// Fills weights[i] = exp(lse[i] - lse_total) and returns lse_total (+inf if nothing contributes).
inline float merge_weights(const float* lse, int n, float* weights) {
  float max_lse = -std::numeric_limits<float>::infinity();
  bool any = false;
  bool saw_nan = false;
  for (int i = 0; i < n; ++i) {
    if (std::isnan(lse[i])) saw_nan = true;
    if (std::isfinite(lse[i])) {
      any = true;
      max_lse = std::max(max_lse, lse[i]);
    }
  }
  if (saw_nan) {
    for (int i = 0; i < n; ++i) weights[i] = std::numeric_limits<float>::quiet_NaN();
    return std::numeric_limits<float>::quiet_NaN();
  }
  if (!any) {
    for (int i = 0; i < n; ++i) weights[i] = 0.f;
    return std::numeric_limits<float>::infinity();
  }
  double sum = 0.0;
  for (int i = 0; i < n; ++i)
    if (std::isfinite(lse[i])) sum += std::exp(static_cast<double>(lse[i] - max_lse));
  const float total = max_lse + static_cast<float>(std::log(sum));
  for (int i = 0; i < n; ++i)
    weights[i] = std::isfinite(lse[i]) ? std::exp(lse[i] - total) : 0.f;
  return total;
}

}  // namespace cpu
}  // namespace flashplus
