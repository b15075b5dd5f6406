// fwd_launch_sm90.cuh — host launcher of the sm90 (wgmma) forward for one (dtype, head dim)
// variant. Included only by the generated instantiation files, which are compiled for sm_90a
// (kernels/CMakeLists.txt): wgmma exists only in that architecture-specific target.
#pragma once

#include <cuda_runtime.h>

#include "fwd_kernel_sm90.cuh"
#include "fwd_traits_sm90.cuh"
#include "launch.h"

namespace flashplus {
namespace kernels {

template <typename Element, int kHeadDim>
cudaError_t launch_fwd_sm90(const FwdParams& params, cudaStream_t stream) {
  using Traits = FwdTraitsSm90<Element, kHeadDim>;
  auto kernel = fwd_kernel_sm90<Traits>;
  constexpr int kSmemBytes = Traits::kSmemBytes;
  const cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  if (status != cudaSuccess) return status;
  const int64_t grid = StaticTileScheduler::grid_size(params);
  if (grid == 0) return cudaSuccess;
  if (grid > INT32_MAX) return cudaErrorInvalidConfiguration;
  kernel<<<static_cast<unsigned>(grid), Traits::kNThreads, kSmemBytes, stream>>>(params);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace flashplus
