// fwd_launch_sm80.cuh — host launcher of the sm80 forward for one (dtype, head dim, dropout, tile, K/V loader)
// variant. Included only by the generated instantiation files (one variant per file, so the
// variants compile in parallel).
#pragma once

#include <cuda_runtime.h>

#include "fwd_kernel_sm80.cuh"
#include "fwd_launch.cuh"
#include "fwd_traits_sm80.cuh"
#include "launch.h"

namespace flashplus {
namespace kernels {

template <typename Element, int kHeadDim, bool kHasDropout, bool kDecodeTile, KvLoad kKvLoad>
cudaError_t launch_fwd_sm80(const FwdParams& params, cudaStream_t stream) {
  using Traits = FwdTraitsSm80<Element, kHeadDim, kHasDropout, kDecodeTile, kKvLoad>;
  // The decode tile shares an SM with 2-4 CTAs of itself (tile_shape.h): ask for the shared-memory
  // carveout that holds them.
  return launch_fwd_grid<Traits::kNThreads, Traits::kSmemBytes, Traits::kMinCtasPerSm>(fwd_kernel_sm80<Traits>, params,
                                                                                       stream);
}

}  // namespace kernels
}  // namespace flashplus
