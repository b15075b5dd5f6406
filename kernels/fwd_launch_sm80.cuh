// fwd_launch_sm80.cuh — host launcher of the sm80 forward for one (dtype, head dim, dropout, tile, K/V loader)
// variant. Included only by the generated instantiation files (one variant per file, so the
// variants compile in parallel).
#pragma once

#include <cuda_runtime.h>

#include "fwd_kernel_sm80.cuh"
#include "fwd_traits_sm80.cuh"
#include "launch.h"

namespace flashplus {
namespace kernels {

template <typename Element, int kHeadDim, bool kHasDropout, bool kDecodeTile, KvLoad kKvLoad>
cudaError_t launch_fwd_sm80(const FwdParams& params, cudaStream_t stream) {
  using Traits = FwdTraitsSm80<Element, kHeadDim, kHasDropout, kDecodeTile, kKvLoad>;
  auto kernel = fwd_kernel_sm80<Traits>;
  constexpr int kSmemBytes = Traits::kSmemBytes;
  if constexpr (kSmemBytes > 48 * 1024) {
    const cudaError_t status =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
    if (status != cudaSuccess) return status;
  }
  const int64_t grid = StaticTileScheduler::grid_size(params);
  if (grid == 0) return cudaSuccess;
  if (grid > INT32_MAX) return cudaErrorInvalidConfiguration;
  kernel<<<static_cast<unsigned>(grid), Traits::kNThreads, kSmemBytes, stream>>>(params);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace flashplus
