// ref_array.h — a dense, row-major array of doubles with a logical shape.
//
// Why: oracle results and kernel outputs are compared element by element in the logical shape of
// the ABI tensor (whatever its strides), so both sides are brought into this one form.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "flashplus/flashplus.h"

namespace fptest {

struct RefArray {
  std::vector<int64_t> sizes;
  std::vector<double> values;

  RefArray() = default;
  explicit RefArray(std::vector<int64_t> shape, double fill = 0.0);

  int64_t numel() const { return static_cast<int64_t>(values.size()); }
  int64_t flat_index(const int64_t* index) const;
  double& at(std::initializer_list<int64_t> index) { return values[flat_index(index.begin())]; }
  double at(std::initializer_list<int64_t> index) const { return values[flat_index(index.begin())]; }
  double& at(const int64_t* index) { return values[flat_index(index)]; }
};

// Copies the logical contents of an ABI tensor (any dtype, any strides) into a RefArray.
RefArray read_tensor(const flashplus_tensor& tensor);

// Stores a RefArray into an ABI tensor of the same logical shape (rounding to its dtype).
void write_tensor(const flashplus_tensor& tensor, const RefArray& values);

}  // namespace fptest
