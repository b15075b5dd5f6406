// bwd_launch_sm90.cuh — host launcher of the sm90 (wgmma) backward for one (dtype, head dim)
// variant: D pre-pass (which also zeroes dq_accum), the dK/dV kernel with fused dQ atomics, the
// dQ post-pass. Fused mode only: deterministic calls run the sm80 two-kernel path (the dispatch
// in cuda_backend.cu never sends them here). Included only by the generated instantiation files,
// compiled for sm_90a.
#pragma once

#include <type_traits>

#include <cuda_runtime.h>

#include "bwd_kernel_sm90.cuh"
#include "bwd_launch.cuh"
#include "bwd_traits_sm90.cuh"
#include "launch.h"

namespace flashplus {
namespace kernels {

template <typename Element, int kHeadDim>
cudaError_t launch_bwd_sm90(const BwdParams& params, cudaStream_t stream) {
  using Traits = BwdTraitsSm90<Element, kHeadDim>;
  if (!params.dq_accum) return cudaErrorInvalidValue;  // needs the fused mode's dQ buffer
  const int dtype = std::is_same_v<Element, cute::half_t> ? FLASHPLUS_DTYPE_FLOAT16 : FLASHPLUS_DTYPE_BFLOAT16;
  cudaError_t status = launch_bwd_preprocess(params, dtype, stream);
  if (status != cudaSuccess) return status;
  const FwdParams& f = params.fwd;
  const int64_t grid = static_cast<int64_t>(key_ctas_sm90<Traits>(f)) * f.h_k * f.batch;
  status = launch_with_smem(bwd_dkdv_kernel_sm90<Traits>, grid, Traits::kNThreads, Traits::kSmemBytes, params, stream);
  if (status != cudaSuccess) return status;
  return launch_bwd_dq_convert(params, dtype, stream);
}

}  // namespace kernels
}  // namespace flashplus
