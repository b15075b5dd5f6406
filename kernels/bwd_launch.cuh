// bwd_launch.cuh — the kernel launch both backward launchers (bwd_launch_sm80.cuh,
// bwd_launch_sm90.cuh) share: dynamic shared memory above the default 48 KiB opted in, a 1-D grid.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "bwd_params.h"

namespace flashplus {
namespace kernels {

template <typename Kernel>
cudaError_t launch_with_smem(Kernel kernel, int64_t grid, int threads, int smem_bytes, const BwdParams& params,
                             cudaStream_t stream) {
  if (grid == 0) return cudaSuccess;
  if (grid > INT32_MAX) return cudaErrorInvalidConfiguration;
  if (smem_bytes > 48 * 1024) {
    const cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
    if (status != cudaSuccess) return status;
  }
  kernel<<<static_cast<unsigned>(grid), threads, smem_bytes, stream>>>(params);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace flashplus
