// cuda_test_support.cpp — see cuda_test_support.h.
#include "cuda_test_support.h"

#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include <cuda_runtime.h>

namespace fpcuda {

namespace {

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

}  // namespace

uint16_t float_to_bf16_bits(float value) {
  const uint32_t u = float_bits(value);
  if (std::isnan(value)) return 0x7FC0;
  const uint32_t rounding = 0x7FFF + ((u >> 16) & 1);  // nearest, ties to even
  return static_cast<uint16_t>((u + rounding) >> 16);
}

float bf16_bits_to_float(uint16_t bits) { return bits_float(static_cast<uint32_t>(bits) << 16); }

uint16_t float_to_half_bits(float value) {
  const uint32_t u = float_bits(value);
  const uint32_t sign = (u >> 16) & 0x8000;
  const float magnitude = std::fabs(value);
  if (std::isnan(value)) return static_cast<uint16_t>(sign | 0x7E00);
  if (magnitude >= 65520.f) return static_cast<uint16_t>(sign | 0x7C00);  // rounds to inf
  if (magnitude < 6.103515625e-05f) {
    // Subnormal: multiples of 2^-24, nearest-even via the FPU's own rounding.
    const float scaled = std::nearbyint(magnitude * 16777216.f);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(scaled));
  }
  const uint32_t exponent = ((u >> 23) & 0xFF) - 127 + 15;
  uint32_t mantissa = u & 0x7FFFFF;
  uint32_t half = (exponent << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1FFF;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) ++half;
  return static_cast<uint16_t>(sign | half);
}

float half_bits_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1F;
  const uint32_t mantissa = bits & 0x3FF;
  if (exponent == 0) {
    const float value = static_cast<float>(mantissa) * 5.9604644775390625e-08f;  // 2^-24
    return (bits & 0x8000) ? -value : value;
  }
  if (exponent == 31) return bits_float(sign | 0x7F800000 | (mantissa << 13));
  return bits_float(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

uint16_t to_bits(float value, flashplus_dtype dtype) {
  return dtype == FLASHPLUS_DTYPE_BFLOAT16 ? float_to_bf16_bits(value) : float_to_half_bits(value);
}

float from_bits(uint16_t bits, flashplus_dtype dtype) {
  return dtype == FLASHPLUS_DTYPE_BFLOAT16 ? bf16_bits_to_float(bits) : half_bits_to_float(bits);
}

double round_to(double value, flashplus_dtype dtype) {
  if (dtype == FLASHPLUS_DTYPE_FLOAT32) return static_cast<float>(value);
  return from_bits(to_bits(static_cast<float>(value), dtype), dtype);
}

const char* dtype_name(flashplus_dtype dtype) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT16: return "fp16";
    case FLASHPLUS_DTYPE_BFLOAT16: return "bf16";
    case FLASHPLUS_DTYPE_FLOAT32: return "fp32";
    default: return "int32";
  }
}

bool gpu_available(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    *why = std::string("no CUDA device: ") + (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    cudaGetLastError();
    return false;
  }
  const flashplus_status s = flashplus_backend_status(FLASHPLUS_DEVICE_CUDA, 0);
  if (s != FLASHPLUS_STATUS_OK) {
    *why = std::string("libflashplus CUDA backend not usable: ") + flashplus_status_name(s) + ": " +
           flashplus_last_error();
    return false;
  }
  return true;
}

bool cuda_variant_compiled(flashplus_dtype dtype, int head_dim, bool dropout, const char* direction) {
  // The manifest's names are fwd_<path>_<dtype>_hd<d>[_dropout]; the smallest compiled d >= head_dim
  // serves the request. A plain substring scan of the JSON keeps this independent of a JSON library.
  const std::string json = flashplus_build_info_json();
  for (int d = head_dim; d <= 256; ++d) {
    const std::string name = std::string("\"") + direction + "_sm80_" + dtype_name(dtype) + "_hd" + std::to_string(d) +
                             (dropout ? "_dropout\"" : "\"");
    if (json.find(name) != std::string::npos) return true;
  }
  return false;
}

bool sm90_variant_available(const char* direction, flashplus_dtype dtype, int head_dim) {
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (major != 9 || minor != 0) return false;
  // The sm90 variant must have the head dim of the sm80 variant that serves the request.
  const std::string json = flashplus_build_info_json();
  for (int d = head_dim; d <= 256; ++d) {
    const std::string suffix = std::string("_") + dtype_name(dtype) + "_hd" + std::to_string(d) + "\"";
    if (json.find("\"" + std::string(direction) + "_sm80" + suffix) == std::string::npos) continue;
    return json.find("\"" + std::string(direction) + "_sm90" + suffix) != std::string::npos;
  }
  return false;
}

std::vector<std::string> kernel_paths(const char* direction, flashplus_dtype dtype, int head_dim) {
  if (sm90_variant_available(direction, dtype, head_dim)) return {"sm80", "sm90"};
  return {"auto"};
}

ScopedKernelPath::ScopedKernelPath(const std::string& path) {
  if (const char* value = std::getenv("FLASHPLUS_KERNEL_PATH")) {
    had_value_ = true;
    previous_ = value;
  }
  if (path == "auto") {
    unsetenv("FLASHPLUS_KERNEL_PATH");
  } else {
    setenv("FLASHPLUS_KERNEL_PATH", path.c_str(), 1);
  }
}

ScopedKernelPath::~ScopedKernelPath() {
  if (had_value_) {
    setenv("FLASHPLUS_KERNEL_PATH", previous_.c_str(), 1);
  } else {
    unsetenv("FLASHPLUS_KERNEL_PATH");
  }
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  check_cuda(cudaMalloc(&ptr_, std::max<size_t>(bytes, 1)), "cudaMalloc");
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept : ptr_(other.ptr_), bytes_(other.bytes_) {
  other.ptr_ = nullptr;
  other.bytes_ = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = other.ptr_;
    bytes_ = other.bytes_;
    other.ptr_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::upload(const void* host, size_t bytes) {
  check_cuda(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
}

void DeviceBuffer::download(void* host, size_t bytes) const {
  check_cuda(cudaMemcpy(host, ptr_, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
}

void DeviceBuffer::fill_bytes(int value) { check_cuda(cudaMemset(ptr_, value, bytes_), "cudaMemset"); }

void device_synchronize() { check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

flashplus_tensor tensor(void* data, flashplus_dtype dtype, flashplus_device_type device,
                        std::vector<int64_t> sizes, std::vector<int64_t> strides) {
  flashplus_tensor t;
  std::memset(&t, 0, sizeof(t));
  t.data = data;
  t.dtype = dtype;
  t.device_type = device;
  t.device_index = 0;
  t.ndim = static_cast<int32_t>(sizes.size());
  if (strides.empty()) {
    strides.assign(sizes.size(), 1);
    for (int i = static_cast<int>(sizes.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * sizes[i + 1];
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    t.sizes[i] = sizes[i];
    t.strides[i] = strides[i];
  }
  return t;
}

}  // namespace fpcuda
