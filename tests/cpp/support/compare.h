// compare.h — the accuracy rule every numerical test applies.
//
// As in flash-attn's own tests, the budget of a kernel is set by how far a naive computation at
// the input precision strays from the exact answer:
//     fp16 / bf16:  max|kernel - fp64| <= 2 * max|same_precision - fp64| + u * scale
//     fp32:         max|kernel - fp64| <= 1e-5 * scale
// where scale = max|fp64| over the tensor and u the dtype's unit roundoff (the error of merely
// storing the result). A caller may raise the scale to `scale_floor` where the result is a sum
// whose terms cancel (dq, dk): rounding then works at the terms' scale, not the result's. Non-finite oracle values (LSE +inf of an empty row) must match exactly,
// and a non-finite kernel value where the oracle is finite (e.g. left-over NaN poison) fails.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "support/ref_array.h"

namespace fptest {

::testing::AssertionResult matches_oracle(const std::string& what, const RefArray& kernel,
                                          const RefArray& exact, const RefArray* same_precision,
                                          int32_t dtype, double scale_floor = 0.0);

// Element-wise |a - b| <= tolerance, non-finite values equal; for exact copies use tolerance 0.
::testing::AssertionResult all_close(const std::string& what, const RefArray& actual,
                                     const RefArray& expected, double tolerance);

std::string format_index(const std::vector<int64_t>& sizes, int64_t flat);

}  // namespace fptest
