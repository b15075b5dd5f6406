// fwd_launch_sm90.cuh — host launcher of the sm90 (wgmma) forward for one (dtype, head dim)
// variant. Included only by the generated instantiation files, which are compiled for sm_90a
// (kernels/CMakeLists.txt): wgmma exists only in that architecture-specific target.
#pragma once

#include <cuda_runtime.h>

#include "fwd_kernel_sm90.cuh"
#include "fwd_launch.cuh"
#include "fwd_traits_sm90.cuh"
#include "launch.h"

namespace flashplus {
namespace kernels {

template <typename Element, int kHeadDim>
cudaError_t launch_fwd_sm90(const FwdParams& params, cudaStream_t stream) {
  using Traits = FwdTraitsSm90<Element, kHeadDim>;
  return launch_fwd_grid<Traits::kNThreads, Traits::kSmemBytes, Traits::kCtasPerSm>(fwd_kernel_sm90<Traits>, params, stream);
}

}  // namespace kernels
}  // namespace flashplus
