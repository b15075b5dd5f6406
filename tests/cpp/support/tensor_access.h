// tensor_access.h — read and write single elements of a flashplus_tensor as doubles.
//
// Why: the oracle interprets the very argument structs the library receives, so it needs to
// address any dtype through pointer + strides exactly as the header defines them. Everything is
// per element on purpose: slow, but with no layout assumption to share with the library.
#pragma once

#include <cstdint>
#include <vector>

#include "flashplus/flashplus.h"

namespace fptest {

size_t dtype_size(int32_t dtype);

// Offset in elements of a logical index (ndim entries) from tensor.data.
int64_t element_offset(const flashplus_tensor& tensor, const int64_t* index);

double load_element(const flashplus_tensor& tensor, const int64_t* index);
void store_element(const flashplus_tensor& tensor, const int64_t* index, double value);

inline double load_element(const flashplus_tensor& tensor, std::initializer_list<int64_t> index) {
  return load_element(tensor, index.begin());
}

// Value of an int32 tensor at a 1-d or 2-d index.
int32_t load_int(const flashplus_tensor& tensor, int64_t i);
int32_t load_int(const flashplus_tensor& tensor, int64_t i, int64_t j);

// Rounds a double to what storing it in `dtype` keeps (identity-ish for fp32).
double round_to_dtype(int32_t dtype, double value);

// Unit roundoff of a floating dtype: half the distance from 1 to the next value.
double unit_roundoff(int32_t dtype);

const char* dtype_name(int32_t dtype);

// Visits every logical index of `sizes` in row-major order.
template <typename Visit>
void for_each_index(const std::vector<int64_t>& sizes, Visit&& visit) {
  for (int64_t size : sizes)
    if (size == 0) return;
  std::vector<int64_t> index(sizes.size(), 0);
  while (true) {
    visit(index.data());
    int dim = static_cast<int>(sizes.size()) - 1;
    while (dim >= 0 && ++index[dim] == sizes[dim]) index[dim--] = 0;
    if (dim < 0) return;
  }
}

}  // namespace fptest
