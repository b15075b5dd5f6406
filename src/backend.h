// backend.h — what every backend (cpu/, kernels/ for CUDA) provides to the dispatcher.
//
// The dispatcher (api.cpp) validates the C ABI arguments into a *Problem, asks the backend of the
// tensors' device whether it implements the request (supports_*), and only then runs it. A backend
// never throws: it returns a Status whose message says what failed.
//
// When CUDA is not compiled, cuda_not_compiled.cpp provides the cuda:: functions, each returning
// FLASHPLUS_STATUS_NOT_COMPILED, so nothing ever falls through silently to another backend.
#pragma once

#include <string>

#include "problem.h"

namespace flashplus {

struct Status {
  flashplus_status code = FLASHPLUS_STATUS_OK;
  std::string message;

  static Status ok() { return {}; }
  static Status error(flashplus_status code, std::string message) {
    return {code, std::move(message)};
  }
  bool is_ok() const { return code == FLASHPLUS_STATUS_OK; }
};

namespace cpu {
Status fwd(const FwdProblem& problem);
Status bwd(const BwdProblem& problem);
Status kv_append(const KvAppendProblem& problem);
Status combine(const CombineProblem& problem);
}  // namespace cpu

namespace cuda {
bool compiled();
// OK when a usable device of that ordinal exists; else the reason.
Status device_status(int device_index);
// Whether a compiled variant implements the request (no memory is touched).
Status supports_fwd(const FwdProblem& problem);
Status supports_bwd(const BwdProblem& problem);
Status supports_kv_append(const KvAppendProblem& problem);
Status supports_combine(const CombineProblem& problem);
Status fwd(const FwdProblem& problem);
Status bwd(const BwdProblem& problem);
Status kv_append(const KvAppendProblem& problem);
Status combine(const CombineProblem& problem);
// Scratch memory on the device of the call (stream-ordered); nullptr on failure.
void* workspace_alloc(size_t bytes, int device_index, void* stream);
void workspace_free(void* ptr, int device_index, void* stream);
// The "cuda" object of build_info JSON.
const char* build_info_json();
// Synchronises the device, then moves its recorded FLASHPLUS_INDEX_ERROR_* bits into `flags`.
Status take_index_errors(int device_index, uint32_t& flags);
}  // namespace cuda

}  // namespace flashplus
