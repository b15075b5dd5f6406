#include "support/compare.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "support/tensor_access.h"

namespace fptest {

std::string format_index(const std::vector<int64_t>& sizes, int64_t flat) {
  std::vector<int64_t> index(sizes.size());
  for (int dim = static_cast<int>(sizes.size()) - 1; dim >= 0; --dim) {
    index[dim] = sizes[dim] ? flat % sizes[dim] : 0;
    flat = sizes[dim] ? flat / sizes[dim] : 0;
  }
  std::ostringstream text;
  text << "(";
  for (size_t dim = 0; dim < index.size(); ++dim) text << (dim ? ", " : "") << index[dim];
  text << ")";
  return text.str();
}

namespace {

std::string format_shape(const std::vector<int64_t>& sizes) {
  std::ostringstream text;
  text << "[";
  for (size_t dim = 0; dim < sizes.size(); ++dim) text << (dim ? ", " : "") << sizes[dim];
  text << "]";
  return text.str();
}

struct ErrorSummary {
  double max_error = 0.0;
  int64_t worst = -1;
  int64_t nonfinite_mismatch = -1;  // first index where finiteness / infinities disagree
};

ErrorSummary summarise(const RefArray& actual, const RefArray& expected) {
  ErrorSummary summary;
  for (int64_t n = 0; n < expected.numel(); ++n) {
    const double a = actual.values[n], e = expected.values[n];
    if (!std::isfinite(e) || !std::isfinite(a)) {
      const bool same = (std::isnan(e) && std::isnan(a)) || a == e;
      if (!same && summary.nonfinite_mismatch < 0) summary.nonfinite_mismatch = n;
      continue;
    }
    const double error = std::fabs(a - e);
    if (error > summary.max_error || summary.worst < 0) {
      summary.max_error = error;
      summary.worst = n;
    }
  }
  return summary;
}

double finite_scale(const RefArray& values) {
  double scale = 0.0;
  for (double value : values.values)
    if (std::isfinite(value)) scale = std::max(scale, std::fabs(value));
  return scale;
}

}  // namespace

::testing::AssertionResult matches_oracle(const std::string& what, const RefArray& kernel,
                                          const RefArray& exact, const RefArray* same_precision,
                                          int32_t dtype, double scale_floor) {
  if (kernel.sizes != exact.sizes)
    return ::testing::AssertionFailure() << what << ": shape " << format_shape(kernel.sizes)
                                         << " != oracle " << format_shape(exact.sizes);
  const ErrorSummary kernel_error = summarise(kernel, exact);
  if (kernel_error.nonfinite_mismatch >= 0) {
    const int64_t n = kernel_error.nonfinite_mismatch;
    return ::testing::AssertionFailure()
           << what << " (" << dtype_name(dtype) << "): at " << format_index(exact.sizes, n)
           << " kernel " << kernel.values[n] << " but oracle " << exact.values[n];
  }
  const double scale = std::max(finite_scale(exact), scale_floor);
  double budget, reference_error = 0.0;
  if (dtype == FLASHPLUS_DTYPE_FLOAT32 || same_precision == nullptr) {
    budget = 1e-5 * scale;
  } else {
    reference_error = summarise(*same_precision, exact).max_error;
    budget = 2.0 * reference_error + unit_roundoff(dtype) * scale;
  }
  if (kernel_error.max_error <= budget) return ::testing::AssertionSuccess();
  const int64_t n = kernel_error.worst;
  return ::testing::AssertionFailure()
         << what << " (" << dtype_name(dtype) << "): max error " << kernel_error.max_error
         << " > budget " << budget << " (same-precision reference error " << reference_error
         << ", scale " << scale << ") at " << format_index(exact.sizes, n) << ": kernel "
         << kernel.values[n] << ", oracle " << exact.values[n];
}

::testing::AssertionResult all_close(const std::string& what, const RefArray& actual,
                                     const RefArray& expected, double tolerance) {
  if (actual.sizes != expected.sizes)
    return ::testing::AssertionFailure() << what << ": shape " << format_shape(actual.sizes)
                                         << " != expected " << format_shape(expected.sizes);
  const ErrorSummary error = summarise(actual, expected);
  if (error.nonfinite_mismatch >= 0) {
    const int64_t n = error.nonfinite_mismatch;
    return ::testing::AssertionFailure() << what << ": at " << format_index(expected.sizes, n)
                                         << " got " << actual.values[n] << ", expected "
                                         << expected.values[n];
  }
  if (error.max_error <= tolerance) return ::testing::AssertionSuccess();
  const int64_t n = error.worst;
  return ::testing::AssertionFailure()
         << what << ": max error " << error.max_error << " > " << tolerance << " at "
         << format_index(expected.sizes, n) << ": got " << actual.values[n] << ", expected "
         << expected.values[n];
}

}  // namespace fptest
