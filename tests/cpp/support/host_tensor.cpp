#include "support/host_tensor.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "support/tensor_access.h"

namespace fptest {

namespace {

flashplus_tensor make_descriptor(flashplus_dtype dtype, const std::vector<int64_t>& sizes,
                                 const std::vector<int64_t>& strides) {
  if (sizes.empty() || sizes.size() > FLASHPLUS_MAX_DIMS || sizes.size() != strides.size())
    throw std::invalid_argument("HostTensor: bad rank");
  flashplus_tensor desc{};
  desc.dtype = dtype;
  desc.device_type = FLASHPLUS_DEVICE_CPU;
  desc.device_index = 0;
  desc.ndim = static_cast<int32_t>(sizes.size());
  for (size_t dim = 0; dim < sizes.size(); ++dim) {
    desc.sizes[dim] = sizes[dim];
    desc.strides[dim] = strides[dim];
  }
  return desc;
}

std::vector<int64_t> row_major_strides(const std::vector<int64_t>& sizes) {
  std::vector<int64_t> strides(sizes.size(), 1);
  for (int dim = static_cast<int>(sizes.size()) - 2; dim >= 0; --dim)
    strides[dim] = strides[dim + 1] * std::max<int64_t>(sizes[dim + 1], 1);
  return strides;
}

}  // namespace

HostTensor HostTensor::contiguous(flashplus_dtype dtype, std::vector<int64_t> sizes) {
  return strided(dtype, sizes, row_major_strides(sizes));
}

HostTensor HostTensor::strided(flashplus_dtype dtype, std::vector<int64_t> sizes,
                               std::vector<int64_t> strides) {
  int64_t lowest = 0, highest = 0;
  bool empty = false;
  for (size_t dim = 0; dim < sizes.size(); ++dim) {
    if (sizes[dim] == 0) empty = true;
    const int64_t reach = (sizes[dim] - 1) * strides[dim];
    if (reach < 0) lowest += reach; else highest += reach;
  }
  const int64_t elements = empty ? 1 : highest - lowest + 1;
  const size_t element_bytes = dtype_size(dtype);
  HostTensor tensor;
  // A little slack keeps data non-null for empty tensors and lets the test see stray writes.
  tensor.storage_ = std::make_shared<std::vector<unsigned char>>(
      static_cast<size_t>(elements) * element_bytes, 0);
  tensor.desc_ = make_descriptor(dtype, sizes, strides);
  tensor.desc_.data = tensor.storage_->data() + (empty ? 0 : -lowest) * element_bytes;
  return tensor;
}

HostTensor HostTensor::int32(const std::vector<int32_t>& values) {
  HostTensor tensor = contiguous(FLASHPLUS_DTYPE_INT32, {static_cast<int64_t>(values.size())});
  if (!values.empty()) std::memcpy(tensor.desc_.data, values.data(), values.size() * 4);
  return tensor;
}

HostTensor HostTensor::int32_2d(int64_t rows, int64_t cols, const std::vector<int32_t>& values) {
  if (static_cast<int64_t>(values.size()) != rows * cols)
    throw std::invalid_argument("int32_2d: wrong value count");
  HostTensor tensor = contiguous(FLASHPLUS_DTYPE_INT32, {rows, cols});
  if (!values.empty()) std::memcpy(tensor.desc_.data, values.data(), values.size() * 4);
  return tensor;
}

HostTensor HostTensor::float32(std::vector<int64_t> sizes, const std::vector<float>& values) {
  HostTensor tensor = contiguous(FLASHPLUS_DTYPE_FLOAT32, std::move(sizes));
  RefArray contents(tensor.shape());
  if (contents.numel() != static_cast<int64_t>(values.size()))
    throw std::invalid_argument("float32: wrong value count");
  std::copy(values.begin(), values.end(), contents.values.begin());
  tensor.assign(contents);
  return tensor;
}

HostTensor HostTensor::select(int dim, int64_t index) const {
  HostTensor view = *this;
  view.desc_.data = static_cast<unsigned char*>(desc_.data) +
                    index * desc_.strides[dim] * static_cast<int64_t>(dtype_size(desc_.dtype));
  for (int d = dim; d + 1 < desc_.ndim; ++d) {
    view.desc_.sizes[d] = desc_.sizes[d + 1];
    view.desc_.strides[d] = desc_.strides[d + 1];
  }
  view.desc_.ndim = desc_.ndim - 1;
  return view;
}

HostTensor HostTensor::narrow(int dim, int64_t start, int64_t length) const {
  HostTensor view = *this;
  view.desc_.data = static_cast<unsigned char*>(desc_.data) +
                    start * desc_.strides[dim] * static_cast<int64_t>(dtype_size(desc_.dtype));
  view.desc_.sizes[dim] = length;
  return view;
}

HostTensor HostTensor::permute(const std::vector<int>& order) const {
  HostTensor view = *this;
  for (size_t d = 0; d < order.size(); ++d) {
    view.desc_.sizes[d] = desc_.sizes[order[d]];
    view.desc_.strides[d] = desc_.strides[order[d]];
  }
  return view;
}

flashplus_tensor HostTensor::absent() {
  flashplus_tensor desc{};
  desc.data = nullptr;
  return desc;
}

double HostTensor::get(std::initializer_list<int64_t> index) const {
  return load_element(desc_, index.begin());
}

void HostTensor::set(std::initializer_list<int64_t> index, double value) {
  store_element(desc_, index.begin(), value);
}

void HostTensor::fill_normal(Rng& rng, double stddev) {
  std::normal_distribution<double> normal(0.0, stddev);
  for_each_index(shape(), [&](const int64_t* index) {
    double value = 0.0;
    // Zeros would hide "forgot to write / read" bugs; redraw until the stored value is non-zero.
    while (round_to_dtype(desc_.dtype, value) == 0.0) value = normal(rng);
    store_element(desc_, index, value);
  });
}

void HostTensor::fill_uniform(Rng& rng, double low, double high) {
  std::uniform_real_distribution<double> uniform(low, high);
  for_each_index(shape(), [&](const int64_t* index) {
    double value = 0.0;
    while (round_to_dtype(desc_.dtype, value) == 0.0) value = uniform(rng);
    store_element(desc_, index, value);
  });
}

int64_t HostTensor::elements_written_outside_view() const {
  const int64_t element_bytes = static_cast<int64_t>(dtype_size(desc_.dtype));
  const int64_t elements = static_cast<int64_t>(storage_->size()) / element_bytes;
  const int64_t base =
      (static_cast<unsigned char*>(desc_.data) - storage_->data()) / element_bytes;
  std::vector<bool> inside(elements, false);
  for_each_index(shape(), [&](const int64_t* index) {
    inside[base + element_offset(desc_, index)] = true;
  });
  int64_t written = 0;
  for (int64_t e = 0; e < elements; ++e) {
    if (inside[e]) continue;
    for (int64_t byte = 0; byte < element_bytes; ++byte)
      if ((*storage_)[e * element_bytes + byte] != 0xFF) {
        ++written;
        break;
      }
  }
  return written;
}

void HostTensor::poison() { std::fill(storage_->begin(), storage_->end(), 0xFF); }

}  // namespace fptest
