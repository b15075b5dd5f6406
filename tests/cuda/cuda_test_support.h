// cuda_test_support.h — small helpers of the GPU tests: device buffers, tensor descriptors,
// fp16 / bf16 conversion, deterministic random data, and the "is there a GPU" skip.
//
// Nothing here is shared with the kernels or the library sources: the conversions are written
// from the IEEE / bfloat16 definitions, so a bug in the library's own rounding cannot hide.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "flashplus/flashplus.h"

namespace fpcuda {

// ---- element conversion (round to nearest even) ----
uint16_t float_to_half_bits(float value);
float half_bits_to_float(uint16_t bits);
uint16_t float_to_bf16_bits(float value);
float bf16_bits_to_float(uint16_t bits);
uint16_t to_bits(float value, flashplus_dtype dtype);      // fp16 or bf16
float from_bits(uint16_t bits, flashplus_dtype dtype);
double round_to(double value, flashplus_dtype dtype);      // value rounded through dtype
const char* dtype_name(flashplus_dtype dtype);

// ---- GPU presence ----
// True when a CUDA device is usable by libflashplus; otherwise *why says why not.
bool gpu_available(std::string* why);

#define FPCUDA_SKIP_WITHOUT_GPU()                                 \
  do {                                                            \
    std::string why_no_gpu;                                       \
    if (!::fpcuda::gpu_available(&why_no_gpu)) GTEST_SKIP() << why_no_gpu; \
  } while (0)

// True when the CUDA build compiled a variant of direction "fwd" or "bwd" serving (dtype, head_dim,
// dropout); reads flashplus_build_info_json().
bool cuda_variant_compiled(flashplus_dtype dtype, int head_dim, bool dropout, const char* direction);

// ---- kernel paths (FLASHPLUS_KERNEL_PATH, kernels/cuda_backend.cu) ----
// True when device 0 has compute capability 9.0 and the build has the sm90 (wgmma) variant of
// `direction` ("fwd" or "bwd") for the compiled head dim that serves (dtype, head_dim): the
// dispatch may then run either path.
bool sm90_variant_available(const char* direction, flashplus_dtype dtype, int head_dim);

// The paths a case of `direction` should run on this device: {"auto"} where only the sm80 path
// exists, {"sm80", "sm90"} where the sm90 path may serve calls (both then get checked).
std::vector<std::string> kernel_paths(const char* direction, flashplus_dtype dtype, int head_dim);

// Sets FLASHPLUS_KERNEL_PATH for its lifetime ("auto": unset), restoring the earlier value.
class ScopedKernelPath {
 public:
  explicit ScopedKernelPath(const std::string& path);
  ~ScopedKernelPath();
  ScopedKernelPath(const ScopedKernelPath&) = delete;
  ScopedKernelPath& operator=(const ScopedKernelPath&) = delete;

 private:
  bool had_value_ = false;
  std::string previous_;
};

// ---- device memory ----
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  void upload(const void* host, size_t bytes);
  void download(void* host, size_t bytes) const;
  void fill_bytes(int value);

  template <typename T>
  static DeviceBuffer from(const std::vector<T>& host) {
    DeviceBuffer b(std::max<size_t>(host.size() * sizeof(T), 1));
    if (!host.empty()) b.upload(host.data(), host.size() * sizeof(T));
    return b;
  }
  template <typename T>
  std::vector<T> to_host(size_t count) const {
    std::vector<T> host(count);
    if (count) download(host.data(), count * sizeof(T));
    return host;
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

void device_synchronize();

// ---- tensor descriptors ----
// Contiguous strides unless strides are given (in elements).
flashplus_tensor tensor(void* data, flashplus_dtype dtype, flashplus_device_type device,
                        std::vector<int64_t> sizes, std::vector<int64_t> strides = {});

// ---- random data ----
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  double normal() { return normal_(engine_); }
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(engine_); }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(engine_); }
  std::mt19937_64& engine() { return engine_; }

 private:
  std::mt19937_64 engine_;
  std::normal_distribution<double> normal_{0.0, 1.0};
};

}  // namespace fpcuda
