#include "fuzz_tensors.h"

#include <cstring>
#include <limits>

namespace {

int64_t element_bytes(int32_t dtype) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT16:
    case FLASHPLUS_DTYPE_BFLOAT16: return 2;
    default: return 4;  // fp32, int32, and room for an unknown dtype the library must refuse
  }
}

int64_t corrupt_size(FuzzBytes& bytes, int64_t size) {
  switch (bytes.range(0, 5)) {
    case 0: return 0;
    case 1: return -1;
    case 2: return size + 1;
    case 3: return size - 1;
    case 4: return int64_t{1} << bytes.range(20, 62);
    default: return std::numeric_limits<int64_t>::max();
  }
}

int64_t corrupt_stride(FuzzBytes& bytes, int64_t stride) {
  switch (bytes.range(0, 6)) {
    case 0: return 0;
    case 1: return -stride;
    case 2: return 2 * stride + 1;
    case 3: return bytes.range(-64, 64);
    case 4: return int64_t{1} << bytes.range(20, 62);
    case 5: return std::numeric_limits<int64_t>::min();
    default: return -(int64_t{1} << bytes.range(20, 62));
  }
}

}  // namespace

flashplus_tensor FuzzTensors::describe(const std::vector<int64_t>& sizes, int32_t dtype) {
  flashplus_tensor t{};
  t.dtype = bytes_.chance(92) ? dtype : static_cast<int32_t>(bytes_.range(-1, 5));
  t.device_type = bytes_.chance(95) ? FLASHPLUS_DEVICE_CPU : static_cast<int32_t>(bytes_.range(-1, 2));
  t.device_index = bytes_.chance(97) ? 0 : static_cast<int32_t>(bytes_.range(-1, 3));
  t.ndim = bytes_.chance(94) ? static_cast<int32_t>(sizes.size())
                             : static_cast<int32_t>(bytes_.range(-1, FLASHPLUS_MAX_DIMS + 1));
  for (int dim = 0; dim < FLASHPLUS_MAX_DIMS; ++dim) {
    int64_t size = dim < static_cast<int>(sizes.size()) ? sizes[dim] : bytes_.range(0, 3);
    if (bytes_.chance(3)) size = corrupt_size(bytes_, size);
    t.sizes[dim] = size;
  }
  // Row-major strides over the claimed rank, then perhaps one corrupted stride.
  const int rank = t.ndim >= 1 && t.ndim <= FLASHPLUS_MAX_DIMS ? t.ndim : FLASHPLUS_MAX_DIMS;
  int64_t stride = 1;
  for (int dim = rank - 1; dim >= 0; --dim) {
    t.strides[dim] = stride;
    const int64_t size = t.sizes[dim];
    if (size > 0 && size < (int64_t{1} << 20) && stride < (int64_t{1} << 40)) stride *= size;
  }
  if (bytes_.chance(12)) {
    const int dim = static_cast<int>(bytes_.range(0, rank - 1));
    t.strides[dim] = corrupt_stride(bytes_, t.strides[dim]);
  }
  return t;
}

bool FuzzTensors::back(flashplus_tensor& t) {
  t.data = nullptr;
  if (t.ndim < 1 || t.ndim > FLASHPLUS_MAX_DIMS) return false;
  // The addressed element range [lowest, highest], in 128-bit arithmetic so nothing overflows.
  __int128 lowest = 0, highest = 0;
  bool empty = false;
  for (int dim = 0; dim < t.ndim; ++dim) {
    if (t.sizes[dim] < 0 || t.sizes[dim] > 4096) return false;
    if (t.sizes[dim] == 0) empty = true;
    const __int128 reach = static_cast<__int128>(t.sizes[dim] - 1) * t.strides[dim];
    if (reach < 0) lowest += reach; else highest += reach;
  }
  const int64_t element = element_bytes(t.dtype);
  const __int128 elements = empty ? 1 : highest - lowest + 1;
  if (elements > (1 << 16)) return false;
  const size_t bytes = static_cast<size_t>(elements) * element;
  buffers_.emplace_back(new unsigned char[bytes]);
  unsigned char* base = buffers_.back().get();
  // Contents: a cheap pseudo-random fill seeded by the input (NaN and inf included at times).
  uint32_t state = bytes_.u32() | 1u;
  for (size_t i = 0; i < bytes; ++i) {
    state = state * 1664525u + 1013904223u;
    base[i] = static_cast<unsigned char>(state >> 24);
  }
  if (t.dtype == FLASHPLUS_DTYPE_FLOAT16 || t.dtype == FLASHPLUS_DTYPE_BFLOAT16) {
    // Mostly small finite values so computations are exercised, not only NaN propagation.
    for (size_t i = 1; i < bytes; i += 2)
      if (!bytes_.chance(1)) base[i] = (t.dtype == FLASHPLUS_DTYPE_FLOAT16 ? 0x38 : 0x3F) ^ (base[i] & 0x81);
  }
  t.data = base + (empty ? 0 : static_cast<int64_t>(-lowest) * element);
  return true;
}

flashplus_tensor FuzzTensors::make(const std::vector<int64_t>& sizes, int32_t dtype, bool optional) {
  if (optional && bytes_.chance(50)) return flashplus_tensor{};
  flashplus_tensor t = describe(sizes, dtype);
  back(t);
  if (t.data && t.dtype == FLASHPLUS_DTYPE_FLOAT32) {
    // fp32 contents: small finite values unless the fuzzer asks for raw bytes.
    if (!bytes_.chance(5)) {
      // Rewrite the addressed elements only (strides may be negative or zero).
      std::vector<int64_t> index(t.ndim, 0);
      bool any = true;
      for (int dim = 0; dim < t.ndim; ++dim) any = any && t.sizes[dim] > 0;
      float value = 0.25f;
      while (any) {
        int64_t offset = 0;
        for (int dim = 0; dim < t.ndim; ++dim) offset += index[dim] * t.strides[dim];
        value = value * -1.37f + 0.11f;
        if (value > 3.f || value < -3.f) value *= 0.1f;
        std::memcpy(static_cast<float*>(t.data) + offset, &value, sizeof value);
        int dim = t.ndim - 1;
        while (dim >= 0 && ++index[dim] == t.sizes[dim]) index[dim--] = 0;
        any = dim >= 0;
      }
    }
  }
  return t;
}

flashplus_tensor FuzzTensors::make_index(const std::vector<int64_t>& sizes,
                                         const std::vector<int32_t>& values, bool optional) {
  if (optional && bytes_.chance(50)) return flashplus_tensor{};
  flashplus_tensor t = describe(sizes, FLASHPLUS_DTYPE_INT32);
  if (!back(t) || t.ndim < 1 || t.ndim > 2 || t.dtype != FLASHPLUS_DTYPE_INT32) return t;
  // Store the intended values at their logical positions (1-d or 2-d), as far as the claimed
  // shape reaches; a fuzzer-chosen entry may be replaced by an arbitrary value.
  const int64_t rows = t.sizes[0], cols = t.ndim == 2 ? t.sizes[1] : 1;
  const int64_t value_cols = sizes.size() == 2 ? sizes[1] : 1;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const size_t flat = static_cast<size_t>(r * value_cols + c);
      int32_t value = flat < values.size() && c < value_cols ? values[flat] : 0;
      if (bytes_.chance(2)) value = static_cast<int32_t>(bytes_.u32());
      const int64_t offset = r * t.strides[0] + (t.ndim == 2 ? c * t.strides[1] : 0);
      std::memcpy(static_cast<int32_t*>(t.data) + offset, &value, sizeof value);
    }
  return t;
}
