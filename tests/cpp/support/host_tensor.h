// host_tensor.h — CPU tensors owned by a test, handed to the C ABI as flashplus_tensor.
//
// A HostTensor is a view (descriptor) onto shared byte storage, so a test can build layouts the
// library must honour: slices of a packed qkv buffer, padded or permuted strides, zero or
// negative strides. Storage beyond the view is kept so a test can check it was not written.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "flashplus/flashplus.h"
#include "support/ref_array.h"

namespace fptest {

using Rng = std::mt19937_64;

class HostTensor {
 public:
  HostTensor() = default;

  // Row-major contiguous tensor (contents zero until filled).
  static HostTensor contiguous(flashplus_dtype dtype, std::vector<int64_t> sizes);
  // Any strides, including zero and negative ones: storage spans exactly the addressed range.
  static HostTensor strided(flashplus_dtype dtype, std::vector<int64_t> sizes,
                            std::vector<int64_t> strides);
  // A 1-d or 2-d int32 tensor with the given contents.
  static HostTensor int32(const std::vector<int32_t>& values);
  static HostTensor int32_2d(int64_t rows, int64_t cols, const std::vector<int32_t>& values);
  // An fp32 tensor with the given contents and shape.
  static HostTensor float32(std::vector<int64_t> sizes, const std::vector<float>& values);

  // The sub-tensor at `index` along `dim` (that dimension removed), sharing storage.
  HostTensor select(int dim, int64_t index) const;
  // Elements [start, start + length) along `dim`, sharing storage.
  HostTensor narrow(int dim, int64_t start, int64_t length) const;
  // The same storage with dimensions reordered: new dim i is old dim order[i].
  HostTensor permute(const std::vector<int>& order) const;

  bool present() const { return desc_.data != nullptr; }
  const flashplus_tensor& abi() const { return desc_; }
  // The descriptor of an absent optional argument (data == NULL).
  static flashplus_tensor absent();

  int64_t size(int dim) const { return desc_.sizes[dim]; }
  int ndim() const { return desc_.ndim; }
  flashplus_dtype dtype() const { return static_cast<flashplus_dtype>(desc_.dtype); }
  std::vector<int64_t> shape() const { return {desc_.sizes, desc_.sizes + desc_.ndim}; }

  double get(std::initializer_list<int64_t> index) const;
  void set(std::initializer_list<int64_t> index, double value);

  // Every logical element drawn from a normal distribution (rounded to the dtype), never zero.
  void fill_normal(Rng& rng, double stddev = 1.0);
  void fill_uniform(Rng& rng, double low, double high);
  // Every byte of the whole storage (not only the view) set to 0xFF: NaN for every float dtype.
  void poison();
  // The whole storage, for "was anything outside the view written" checks.
  std::vector<unsigned char> storage_bytes() const { return *storage_; }
  // After poison() and a library call: how many storage elements outside this view no longer
  // hold the 0xFF poison (the library wrote where it must not).
  int64_t elements_written_outside_view() const;

  RefArray values() const { return read_tensor(desc_); }
  void assign(const RefArray& values) { write_tensor(desc_, values); }

 private:
  std::shared_ptr<std::vector<unsigned char>> storage_;
  flashplus_tensor desc_{};
};

}  // namespace fptest
