#include "support/ref_array.h"

#include "support/tensor_access.h"

namespace fptest {

RefArray::RefArray(std::vector<int64_t> shape, double fill) : sizes(std::move(shape)) {
  int64_t count = 1;
  for (int64_t size : sizes) count *= size;
  values.assign(static_cast<size_t>(count), fill);
}

int64_t RefArray::flat_index(const int64_t* index) const {
  int64_t flat = 0;
  for (size_t dim = 0; dim < sizes.size(); ++dim) flat = flat * sizes[dim] + index[dim];
  return flat;
}

RefArray read_tensor(const flashplus_tensor& tensor) {
  RefArray result(std::vector<int64_t>(tensor.sizes, tensor.sizes + tensor.ndim));
  int64_t flat = 0;
  for_each_index(result.sizes, [&](const int64_t* index) {
    result.values[flat++] = load_element(tensor, index);
  });
  return result;
}

void write_tensor(const flashplus_tensor& tensor, const RefArray& values) {
  int64_t flat = 0;
  for_each_index(values.sizes, [&](const int64_t* index) {
    store_element(tensor, index, values.values[flat++]);
  });
}

}  // namespace fptest
