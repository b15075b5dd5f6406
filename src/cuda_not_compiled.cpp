// cuda_not_compiled.cpp — the cuda:: backend of a build without nvcc: every request answers
// NOT_COMPILED with how to get the CUDA backend, so nothing silently runs elsewhere.
#include "backend.h"

namespace flashplus {
namespace cuda {
namespace {
Status not_compiled() {
  return Status::error(FLASHPLUS_STATUS_NOT_COMPILED,
                       "the CUDA backend was not compiled into this libflashplus (built without "
                       "nvcc); rebuild with the CUDA toolkit installed, or pass CPU tensors");
}
}  // namespace

bool compiled() { return false; }
Status device_status(int) { return not_compiled(); }
Status supports_fwd(const FwdProblem&) { return not_compiled(); }
Status supports_bwd(const BwdProblem&) { return not_compiled(); }
Status supports_kv_append(const KvAppendProblem&) { return not_compiled(); }
Status supports_combine(const CombineProblem&) { return not_compiled(); }
Status fwd(const FwdProblem&) { return not_compiled(); }
Status bwd(const BwdProblem&) { return not_compiled(); }
Status kv_append(const KvAppendProblem&) { return not_compiled(); }
Status combine(const CombineProblem&) { return not_compiled(); }
void* workspace_alloc(size_t, int, void*) { return nullptr; }
void workspace_free(void*, int, void*) {}
const char* build_info_json() { return "{\"compiled\": false}"; }
Status take_index_errors(int, uint32_t& flags) {
  flags = 0;
  return Status::ok();
}

}  // namespace cuda
}  // namespace flashplus
