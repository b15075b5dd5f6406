// rounding.h — how a reference rounds its intermediate results.
//
// The fp64 oracle never rounds. The "same-precision" reference rounds every intermediate result
// (scores, probabilities, outputs, gradients) to the input dtype, the way an fp16/bf16 framework
// computation does; its error against the oracle sets the error budget of the kernel under test.
#pragma once

#include <cstdint>

#include "support/tensor_access.h"

namespace oracle {

struct Rounding {
  bool to_input_dtype = false;
  int32_t dtype = FLASHPLUS_DTYPE_FLOAT32;

  static Rounding exact() { return {}; }
  static Rounding like(int32_t input_dtype) { return {true, input_dtype}; }

  double operator()(double value) const {
    return to_input_dtype ? fptest::round_to_dtype(dtype, value) : value;
  }
};

}  // namespace oracle
