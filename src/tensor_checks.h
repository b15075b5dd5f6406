// tensor_checks.h — the building blocks of argument validation.
//
// Every check throws ArgumentError with a message that names the argument and the rule it broke
// ("cu_seqlens_q must be int32, got float16"). Exceptions never leave the library: api.cpp catches
// them at the C ABI boundary and turns them into a status plus flashplus_last_error() text.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "flashplus/flashplus.h"

namespace flashplus {

class ArgumentError : public std::runtime_error {
 public:
  ArgumentError(flashplus_status code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  flashplus_status code() const { return code_; }

 private:
  flashplus_status code_;
};

[[noreturn]] void fail(const std::string& message);  // INVALID_ARGUMENT
[[noreturn]] void fail_with(flashplus_status code, const std::string& message);

const char* dtype_name(int32_t dtype);
const char* device_type_name(int32_t device_type);
std::string shape_string(const flashplus_tensor& t);

inline bool present(const flashplus_tensor& t) { return t.data != nullptr; }

// Structural sanity of any present tensor: known dtype and device, ndim in range, non-negative
// sizes, unit stride on the last dimension, and an addressable extent that cannot overflow int64.
void check_well_formed(const flashplus_tensor& t, const char* name);
void check_ndim(const flashplus_tensor& t, const char* name, int ndim, const char* layout);
void check_dtype(const flashplus_tensor& t, const char* name, int32_t dtype);
void check_same_dtype(const flashplus_tensor& t, const char* name, const flashplus_tensor& ref,
                      const char* ref_name);
void check_float_dtype(const flashplus_tensor& t, const char* name);  // fp16, bf16 or fp32
void check_size(const flashplus_tensor& t, const char* name, int dim, int64_t expected,
                const char* what);
void check_same_device(const flashplus_tensor& t, const char* name, const flashplus_tensor& ref,
                       const char* ref_name);
// Outputs must not alias themselves through zero strides (a broadcast output is a race).
void check_writable(const flashplus_tensor& t, const char* name);
// A 1-D int32 index tensor of n entries with unit stride (cu_seqlens, seqused_k, ...).
void check_index_vector(const flashplus_tensor& t, const char* name, int64_t n);

// Range of element offsets [lo, hi] the tensor may touch, relative to data.
void element_extent(const flashplus_tensor& t, int64_t& lo, int64_t& hi);
size_t dtype_size(int32_t dtype);

}  // namespace flashplus
