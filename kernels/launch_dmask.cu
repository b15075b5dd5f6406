// launch_dmask.cu — host launcher of dmask_kernel.cuh.
#include "dmask_kernel.cuh"

namespace flashplus {
namespace kernels {

cudaError_t launch_dmask(const FwdParams& fwd, const DmaskParams& params, int dtype, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(fwd.batch) * fwd.h_q * params.rows;
  if (rows == 0 || params.cols == 0) return cudaSuccess;
  if (rows > INT32_MAX || fwd.head_dim > kDmaskMaxHeadDim) return cudaErrorInvalidConfiguration;
  dmask_kernel<<<static_cast<unsigned>(rows), kDmaskThreads, 0, stream>>>(fwd, params, dtype);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace flashplus
