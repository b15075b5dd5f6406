// tensor_checks.cpp — see tensor_checks.h.
#include "tensor_checks.h"

#include <cstdlib>
#include <sstream>

namespace flashplus {

void fail(const std::string& message) { fail_with(FLASHPLUS_STATUS_INVALID_ARGUMENT, message); }

void fail_with(flashplus_status code, const std::string& message) {
  throw ArgumentError(code, message);
}

const char* dtype_name(int32_t dtype) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT16: return "float16";
    case FLASHPLUS_DTYPE_BFLOAT16: return "bfloat16";
    case FLASHPLUS_DTYPE_FLOAT32: return "float32";
    case FLASHPLUS_DTYPE_INT32: return "int32";
    default: return "unknown dtype";
  }
}

const char* device_type_name(int32_t device_type) {
  switch (device_type) {
    case FLASHPLUS_DEVICE_CPU: return "cpu";
    case FLASHPLUS_DEVICE_CUDA: return "cuda";
    default: return "unknown device";
  }
}

size_t dtype_size(int32_t dtype) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT16:
    case FLASHPLUS_DTYPE_BFLOAT16: return 2;
    case FLASHPLUS_DTYPE_FLOAT32:
    case FLASHPLUS_DTYPE_INT32: return 4;
    default: return 0;
  }
}

std::string shape_string(const flashplus_tensor& t) {
  std::ostringstream os;
  os << "(";
  for (int i = 0; i < t.ndim && i < FLASHPLUS_MAX_DIMS; ++i) os << (i ? ", " : "") << t.sizes[i];
  os << ")";
  return os.str();
}

void element_extent(const flashplus_tensor& t, int64_t& lo, int64_t& hi) {
  lo = 0;
  hi = 0;
  for (int i = 0; i < t.ndim; ++i) {
    if (t.sizes[i] == 0) {
      lo = hi = 0;
      return;
    }
    const int64_t reach = (t.sizes[i] - 1) * t.strides[i];
    if (reach < 0) lo += reach; else hi += reach;
  }
}

void check_well_formed(const flashplus_tensor& t, const char* name) {
  std::ostringstream os;
  if (dtype_size(t.dtype) == 0) {
    os << name << " has an unknown dtype code " << t.dtype;
    fail(os.str());
  }
  if (t.device_type != FLASHPLUS_DEVICE_CPU && t.device_type != FLASHPLUS_DEVICE_CUDA) {
    os << name << " has an unknown device_type code " << t.device_type;
    fail(os.str());
  }
  if (t.device_index < 0) {
    os << name << ".device_index must be >= 0, got " << t.device_index;
    fail(os.str());
  }
  if (t.ndim < 1 || t.ndim > FLASHPLUS_MAX_DIMS) {
    os << name << ".ndim must be in 1.." << FLASHPLUS_MAX_DIMS << ", got " << t.ndim;
    fail(os.str());
  }
  // Sizes and strides are bounded so that every offset computation below stays inside int64.
  constexpr int64_t kMaxExtent = int64_t(1) << 46;
  for (int i = 0; i < t.ndim; ++i) {
    if (t.sizes[i] < 0 || t.sizes[i] > kMaxExtent) {
      os << name << ".sizes[" << i << "] must be in [0, 2^46], got " << t.sizes[i];
      fail(os.str());
    }
    if (t.strides[i] < -kMaxExtent || t.strides[i] > kMaxExtent) {
      os << name << ".strides[" << i << "] must be within +-2^46, got " << t.strides[i];
      fail(os.str());
    }
  }
  int64_t reach = 0;
  for (int i = 0; i < t.ndim; ++i) {
    if (t.sizes[i] == 0) { reach = 0; break; }
    const __int128 term = static_cast<__int128>(t.sizes[i] - 1) *
                          static_cast<__int128>(std::llabs(t.strides[i]));
    if (term > kMaxExtent || reach + static_cast<int64_t>(term) > kMaxExtent) {
      os << name << " with sizes " << shape_string(t) << " spans more than 2^46 elements";
      fail(os.str());
    }
    reach += static_cast<int64_t>(term);
  }
  if (t.sizes[t.ndim - 1] > 1 && t.strides[t.ndim - 1] != 1) {
    os << name << " must have stride 1 on its last dimension, got " << t.strides[t.ndim - 1];
    fail(os.str());
  }
}

void check_ndim(const flashplus_tensor& t, const char* name, int ndim, const char* layout) {
  if (t.ndim != ndim) {
    std::ostringstream os;
    os << name << " must be " << ndim << "-D " << layout << ", got shape " << shape_string(t);
    fail(os.str());
  }
}

void check_dtype(const flashplus_tensor& t, const char* name, int32_t dtype) {
  if (t.dtype != dtype) {
    std::ostringstream os;
    os << name << " must be " << dtype_name(dtype) << ", got " << dtype_name(t.dtype);
    fail(os.str());
  }
}

void check_same_dtype(const flashplus_tensor& t, const char* name, const flashplus_tensor& ref,
                      const char* ref_name) {
  if (t.dtype != ref.dtype) {
    std::ostringstream os;
    os << name << " must have the dtype of " << ref_name << " (" << dtype_name(ref.dtype)
       << "), got " << dtype_name(t.dtype);
    fail(os.str());
  }
}

void check_float_dtype(const flashplus_tensor& t, const char* name) {
  if (t.dtype != FLASHPLUS_DTYPE_FLOAT16 && t.dtype != FLASHPLUS_DTYPE_BFLOAT16 &&
      t.dtype != FLASHPLUS_DTYPE_FLOAT32) {
    std::ostringstream os;
    os << name << " must be float16, bfloat16 or float32, got " << dtype_name(t.dtype);
    fail(os.str());
  }
}

void check_size(const flashplus_tensor& t, const char* name, int dim, int64_t expected,
                const char* what) {
  if (t.sizes[dim] != expected) {
    std::ostringstream os;
    os << name << ".size(" << dim << ") must equal " << what << " (" << expected << "), got "
       << t.sizes[dim] << " in shape " << shape_string(t);
    fail(os.str());
  }
}

void check_same_device(const flashplus_tensor& t, const char* name, const flashplus_tensor& ref,
                       const char* ref_name) {
  if (t.device_type != ref.device_type || t.device_index != ref.device_index) {
    std::ostringstream os;
    os << name << " must be on the device of " << ref_name << " (" << device_type_name(ref.device_type)
       << ":" << ref.device_index << "), got " << device_type_name(t.device_type) << ":"
       << t.device_index;
    fail(os.str());
  }
}

void check_writable(const flashplus_tensor& t, const char* name) {
  for (int i = 0; i < t.ndim; ++i) {
    if (t.sizes[i] > 1 && t.strides[i] == 0) {
      std::ostringstream os;
      os << name << " is written, so it must not broadcast: stride " << i << " is 0 with size "
         << t.sizes[i];
      fail(os.str());
    }
  }
}

void check_index_vector(const flashplus_tensor& t, const char* name, int64_t n) {
  check_dtype(t, name, FLASHPLUS_DTYPE_INT32);
  check_ndim(t, name, 1, "int32 vector");
  if (t.sizes[0] != n) {
    std::ostringstream os;
    os << name << " must have " << n << " entries, got " << t.sizes[0];
    fail(os.str());
  }
}

}  // namespace flashplus
