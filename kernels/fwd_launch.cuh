// fwd_launch.cuh — the launch both forward launchers (fwd_launch_sm80.cuh, fwd_launch_sm90.cuh)
// share: dynamic shared memory above the default 48 KiB opted in, one CTA per tile of the flat
// grid (tile_scheduler.cuh).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "fwd_params.h"
#include "tile_scheduler.cuh"

namespace flashplus {
namespace kernels {

// kCtasPerSm > 1: the kernel is built to share an SM with more CTAs of itself, so the SM's
// L1 / shared-memory split is asked to give shared memory the most (the default split may hold
// only one such CTA's shared memory).
template <int kNThreads, int kSmemBytes, int kCtasPerSm = 1, typename Kernel>
cudaError_t launch_fwd_grid(Kernel kernel, const FwdParams& params, cudaStream_t stream) {
  if constexpr (kSmemBytes > 48 * 1024) {
    const cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
    if (status != cudaSuccess) return status;
  }
  if constexpr (kCtasPerSm > 1) {
    const cudaError_t status =
        cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
    if (status != cudaSuccess) return status;
  }
  const int64_t grid = StaticTileScheduler::grid_size(params);
  if (grid == 0) return cudaSuccess;
  if (grid > INT32_MAX) return cudaErrorInvalidConfiguration;
  kernel<<<static_cast<unsigned>(grid), kNThreads, kSmemBytes, stream>>>(params);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace flashplus
