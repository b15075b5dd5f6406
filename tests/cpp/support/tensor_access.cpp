#include "support/tensor_access.h"

#include <cstring>
#include <stdexcept>

#include "support/half_float.h"

namespace fptest {

size_t dtype_size(int32_t dtype) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT16:
    case FLASHPLUS_DTYPE_BFLOAT16: return 2;
    case FLASHPLUS_DTYPE_FLOAT32:
    case FLASHPLUS_DTYPE_INT32: return 4;
    default: throw std::invalid_argument("dtype_size: unknown dtype");
  }
}

int64_t element_offset(const flashplus_tensor& tensor, const int64_t* index) {
  int64_t offset = 0;
  for (int dim = 0; dim < tensor.ndim; ++dim) offset += index[dim] * tensor.strides[dim];
  return offset;
}

static unsigned char* element_address(const flashplus_tensor& tensor, const int64_t* index) {
  return static_cast<unsigned char*>(tensor.data) +
         element_offset(tensor, index) * static_cast<int64_t>(dtype_size(tensor.dtype));
}

double load_element(const flashplus_tensor& tensor, const int64_t* index) {
  const unsigned char* address = element_address(tensor, index);
  switch (tensor.dtype) {
    case FLASHPLUS_DTYPE_FLOAT16: {
      uint16_t bits;
      std::memcpy(&bits, address, 2);
      return half_bits_to_float(bits);
    }
    case FLASHPLUS_DTYPE_BFLOAT16: {
      uint16_t bits;
      std::memcpy(&bits, address, 2);
      return bf16_bits_to_float(bits);
    }
    case FLASHPLUS_DTYPE_FLOAT32: {
      float value;
      std::memcpy(&value, address, 4);
      return value;
    }
    case FLASHPLUS_DTYPE_INT32: {
      int32_t value;
      std::memcpy(&value, address, 4);
      return value;
    }
    default: throw std::invalid_argument("load_element: unknown dtype");
  }
}

void store_element(const flashplus_tensor& tensor, const int64_t* index, double value) {
  unsigned char* address = element_address(tensor, index);
  switch (tensor.dtype) {
    case FLASHPLUS_DTYPE_FLOAT16: {
      const uint16_t bits = float_to_half_bits(static_cast<float>(value));
      std::memcpy(address, &bits, 2);
      return;
    }
    case FLASHPLUS_DTYPE_BFLOAT16: {
      const uint16_t bits = float_to_bf16_bits(static_cast<float>(value));
      std::memcpy(address, &bits, 2);
      return;
    }
    case FLASHPLUS_DTYPE_FLOAT32: {
      const float stored = static_cast<float>(value);
      std::memcpy(address, &stored, 4);
      return;
    }
    case FLASHPLUS_DTYPE_INT32: {
      const int32_t stored = static_cast<int32_t>(value);
      std::memcpy(address, &stored, 4);
      return;
    }
    default: throw std::invalid_argument("store_element: unknown dtype");
  }
}

int32_t load_int(const flashplus_tensor& tensor, int64_t i) {
  const int64_t index[1] = {i};
  return static_cast<int32_t>(load_element(tensor, index));
}

int32_t load_int(const flashplus_tensor& tensor, int64_t i, int64_t j) {
  const int64_t index[2] = {i, j};
  return static_cast<int32_t>(load_element(tensor, index));
}

double round_to_dtype(int32_t dtype, double value) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT16: return round_to_half(value);
    case FLASHPLUS_DTYPE_BFLOAT16: return round_to_bf16(value);
    case FLASHPLUS_DTYPE_FLOAT32: return static_cast<float>(value);
    default: return value;
  }
}

double unit_roundoff(int32_t dtype) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT16: return 1.0 / 2048.0;  // 2^-11
    case FLASHPLUS_DTYPE_BFLOAT16: return 1.0 / 256.0;  // 2^-8
    case FLASHPLUS_DTYPE_FLOAT32: return 1.0 / 16777216.0;  // 2^-24
    default: return 0.0;
  }
}

const char* dtype_name(int32_t dtype) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT16: return "fp16";
    case FLASHPLUS_DTYPE_BFLOAT16: return "bf16";
    case FLASHPLUS_DTYPE_FLOAT32: return "fp32";
    case FLASHPLUS_DTYPE_INT32: return "int32";
    default: return "unknown";
  }
}

}  // namespace fptest
