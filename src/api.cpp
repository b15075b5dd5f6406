// api.cpp — the extern "C" entry points: copy args, validate, pick the backend, run.
//
// This is the only place where C++ meets the C ABI, so it is the only place that catches: every
// exception (argument errors, bad_alloc, anything else) becomes a status plus a thread-local message.
// Backends are chosen by the tensors' device only; a request a backend cannot serve is an explicit
// UNSUPPORTED / NOT_COMPILED, never a silent fall-through to another backend.
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "backend.h"
#include "build_info.h"
#include "tensor_checks.h"
#include "validate.h"

namespace flashplus {
namespace {

thread_local std::string last_error_text;

flashplus_status finish(const Status& status) {
  last_error_text = status.message;
  return status.code;
}

template <typename Body>
flashplus_status guarded(Body&& body) {
  try {
    return finish(body());
  } catch (const ArgumentError& e) {
    return finish(Status::error(e.code(), e.what()));
  } catch (const std::bad_alloc&) {
    return finish(Status::error(FLASHPLUS_STATUS_OUT_OF_MEMORY, "out of host memory"));
  } catch (const std::exception& e) {
    return finish(Status::error(FLASHPLUS_STATUS_INTERNAL_ERROR, std::string("internal error: ") + e.what()));
  } catch (...) {
    return finish(Status::error(FLASHPLUS_STATUS_INTERNAL_ERROR, "internal error: unknown exception"));
  }
}

bool is_dry_run(uint32_t flags) { return (flags & FLASHPLUS_FLAG_DRY_RUN) != 0; }

// Contents of index tensors are checked where the host can read them.
bool reads_contents(const Device& device, uint32_t flags) {
  return device.type == FLASHPLUS_DEVICE_CPU && !is_dry_run(flags);
}

Status cuda_ready(const Device& device) {
  if (!cuda::compiled())
    return Status::error(FLASHPLUS_STATUS_NOT_COMPILED,
                         "the CUDA backend was not compiled into this libflashplus (built without "
                         "nvcc); rebuild with the CUDA toolkit installed, or pass CPU tensors");
  return cuda::device_status(device.index);
}

// CPU runs directly; CUDA first needs a usable device and a compiled variant for the request.
// A dry run stops after those checks.
template <typename Problem>
Status dispatch(const Device& device, uint32_t flags, const Problem& problem,
                Status (*run_cpu)(const Problem&), Status (*cuda_supports)(const Problem&),
                Status (*run_cuda)(const Problem&)) {
  if (device.type == FLASHPLUS_DEVICE_CPU) return is_dry_run(flags) ? Status::ok() : run_cpu(problem);
  Status ready = cuda_ready(device);
  if (!ready.is_ok()) return ready;
  Status support = cuda_supports(problem);
  if (!support.is_ok() || is_dry_run(flags)) return support;
  return run_cuda(problem);
}

// Host scratch for the CPU backend, device scratch (stream-ordered) for CUDA.
class Workspace {
 public:
  Workspace(const Device& device, void* stream) : device_(device), stream_(stream) {}
  ~Workspace() {
    if (device_ptr_) cuda::workspace_free(device_ptr_, device_.index, stream_);
  }
  void* get(size_t bytes) {
    if (device_.type == FLASHPLUS_DEVICE_CPU) {
      host_.resize((bytes + 15) / 16);
      return host_.data();
    }
    device_ptr_ = cuda::workspace_alloc(bytes, device_.index, stream_);
    if (!device_ptr_) fail_with(FLASHPLUS_STATUS_OUT_OF_MEMORY, "could not allocate CUDA workspace");
    return device_ptr_;
  }

 private:
  struct alignas(16) Chunk { char bytes[16]; };
  Device device_;
  void* stream_;
  std::vector<Chunk> host_;
  void* device_ptr_ = nullptr;
};

}  // namespace
}  // namespace flashplus

using namespace flashplus;

extern "C" {

FLASHPLUS_API flashplus_status flashplus_fwd(const flashplus_fwd_args* args) {
  return guarded([&]() -> Status {
    const flashplus_fwd_args a = copy_args(args, "flashplus_fwd_args");
    const Device device{a.q.device_type, a.q.device_index};
    const FwdProblem problem = validate_fwd(a, reads_contents(device, a.flags));
    return dispatch(device, a.flags, problem, cpu::fwd, cuda::supports_fwd, cuda::fwd);
  });
}

FLASHPLUS_API flashplus_status flashplus_bwd(const flashplus_bwd_args* args) {
  return guarded([&]() -> Status {
    const flashplus_bwd_args a = copy_args(args, "flashplus_bwd_args");
    const Device device{a.q.device_type, a.q.device_index};
    const BwdProblem problem = validate_bwd(a, reads_contents(device, a.flags));
    return dispatch(device, a.flags, problem, cpu::bwd, cuda::supports_bwd, cuda::bwd);
  });
}

FLASHPLUS_API flashplus_status flashplus_fwd_kvcache(const flashplus_kvcache_args* args) {
  return guarded([&]() -> Status {
    const flashplus_kvcache_args a = copy_args(args, "flashplus_kvcache_args");
    const Device device{a.q.device_type, a.q.device_index};
    KvCachePlan plan = validate_kvcache(a, reads_contents(device, a.flags));
    const bool on_cpu = device.type == FLASHPLUS_DEVICE_CPU;
    if (!on_cpu) {
      Status ready = cuda_ready(device);
      if (!ready.is_ok()) return ready;
      Status support = cuda::supports_kv_append(plan.append);
      if (support.is_ok()) support = cuda::supports_fwd(plan.attention);
      if (!support.is_ok()) return support;
    }
    if (is_dry_run(a.flags)) return Status::ok();

    Workspace workspace(device, a.stream);
    if (plan.needs_q_workspace) {
      // The rotated q is written densely (b, s_q, h_q, d) into scratch; the attention reads it there.
      const int64_t d = plan.append.head_dim, h = plan.append.h_q, s = plan.append.s_q;
      RowsView rotated;
      rotated.data = workspace.get(plan.q_workspace_elements * dtype_size(a.q.dtype));
      rotated.dtype = static_cast<flashplus_dtype>(a.q.dtype);
      rotated.head_stride = d;
      rotated.row_stride = h * d;
      rotated.batch_stride = s * h * d;
      plan.append.q_rotated = rotated;
      plan.attention.q = rotated;
    }
    Status appended = on_cpu ? cpu::kv_append(plan.append) : cuda::kv_append(plan.append);
    if (!appended.is_ok()) return appended;
    return on_cpu ? cpu::fwd(plan.attention) : cuda::fwd(plan.attention);
  });
}

FLASHPLUS_API flashplus_status flashplus_combine(const flashplus_combine_args* args) {
  return guarded([&]() -> Status {
    const flashplus_combine_args a = copy_args(args, "flashplus_combine_args");
    const Device device{a.out.device_type, a.out.device_index};
    CombinePlan plan = validate_combine(a, reads_contents(device, a.flags));
    plan.problem.out_partials = plan.out_views.data();
    plan.problem.lse_partials = plan.lse_views.data();
    return dispatch(device, a.flags, plan.problem, cpu::combine, cuda::supports_combine, cuda::combine);
  });
}

FLASHPLUS_API void flashplus_fwd_args_init(flashplus_fwd_args* args) {
  if (!args) return;
  std::memset(args, 0, sizeof(*args));
  args->struct_size = sizeof(*args);
  args->window_left = args->window_right = -1;
}

FLASHPLUS_API void flashplus_bwd_args_init(flashplus_bwd_args* args) {
  if (!args) return;
  std::memset(args, 0, sizeof(*args));
  args->struct_size = sizeof(*args);
  args->window_left = args->window_right = -1;
}

FLASHPLUS_API void flashplus_kvcache_args_init(flashplus_kvcache_args* args) {
  if (!args) return;
  std::memset(args, 0, sizeof(*args));
  args->struct_size = sizeof(*args);
  args->window_left = args->window_right = -1;
  args->rotary_interleaved = 1;
}

FLASHPLUS_API void flashplus_combine_args_init(flashplus_combine_args* args) {
  if (!args) return;
  std::memset(args, 0, sizeof(*args));
  args->struct_size = sizeof(*args);
}

FLASHPLUS_API const char* flashplus_last_error(void) { return last_error_text.c_str(); }

FLASHPLUS_API flashplus_status flashplus_take_index_errors(int32_t device_index, uint32_t* flags) {
  return flashplus::guarded([&]() -> flashplus::Status {
    if (!flags) return flashplus::Status::error(FLASHPLUS_STATUS_INVALID_ARGUMENT, "flags must not be NULL");
    *flags = 0;
    if (!flashplus::cuda::compiled()) return flashplus::Status::ok();
    return flashplus::cuda::take_index_errors(device_index, *flags);
  });
}

FLASHPLUS_API const char* flashplus_status_name(flashplus_status status) {
  switch (status) {
    case FLASHPLUS_STATUS_OK: return "OK";
    case FLASHPLUS_STATUS_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case FLASHPLUS_STATUS_UNSUPPORTED: return "UNSUPPORTED";
    case FLASHPLUS_STATUS_NOT_COMPILED: return "NOT_COMPILED";
    case FLASHPLUS_STATUS_DEVICE_ERROR: return "DEVICE_ERROR";
    case FLASHPLUS_STATUS_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    case FLASHPLUS_STATUS_INTERNAL_ERROR: return "INTERNAL_ERROR";
  }
  return "UNKNOWN_STATUS";
}

FLASHPLUS_API const char* flashplus_version(void) { return FLASHPLUS_VERSION_STRING; }

FLASHPLUS_API uint32_t flashplus_abi_version(void) { return FLASHPLUS_ABI_VERSION; }

FLASHPLUS_API const char* flashplus_build_info_json(void) { return build_info_json(); }

FLASHPLUS_API flashplus_status flashplus_backend_status(int32_t device_type, int32_t device_index) {
  return guarded([&]() -> Status {
    if (device_type == FLASHPLUS_DEVICE_CPU) return Status::ok();
    if (device_type != FLASHPLUS_DEVICE_CUDA)
      return Status::error(FLASHPLUS_STATUS_INVALID_ARGUMENT,
                           "device_type must be FLASHPLUS_DEVICE_CPU (0) or FLASHPLUS_DEVICE_CUDA (1)");
    if (device_index < 0)
      return Status::error(FLASHPLUS_STATUS_INVALID_ARGUMENT, "device_index must be >= 0");
    return cuda_ready(Device{device_type, device_index});
  });
}

}  // extern "C"
