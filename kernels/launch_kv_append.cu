// launch_kv_append.cu — host launcher of kv_append_kernel.cuh.
#include "kv_append_kernel.cuh"

namespace flashplus {
namespace kernels {

cudaError_t launch_kv_append(const KvAppendParams& params, cudaStream_t stream) {
  const int64_t k_items = params.k_new.data ? static_cast<int64_t>(params.batch) * params.s_new * params.h_k : 0;
  const int64_t q_items = params.q_rotated.data ? static_cast<int64_t>(params.batch) * params.s_q * params.h_q : 0;
  const int64_t items = k_items + q_items;
  if (items == 0) return cudaSuccess;
  const int64_t blocks = (items + kKvAppendWarpsPerBlock - 1) / kKvAppendWarpsPerBlock;
  if (blocks > INT32_MAX) return cudaErrorInvalidConfiguration;
  kv_append_kernel<<<static_cast<unsigned>(blocks), kKvAppendWarpsPerBlock * 32, 0, stream>>>(params);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace flashplus
