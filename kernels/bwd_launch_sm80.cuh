// bwd_launch_sm80.cuh — host launcher of the sm80 backward for one (dtype, head dim, dropout)
// variant: D pre-pass, then either the fused dK/dV/dQ kernel and the dQ post-pass, or (deterministic
// mode) the dK/dV and dQ kernels, all on one stream.
// Included only by the generated instantiation files.
#pragma once

#include <type_traits>

#include <cuda_runtime.h>

#include "bwd_kernel_sm80.cuh"
#include "bwd_launch.cuh"
#include "bwd_traits_sm80.cuh"
#include "launch.h"

namespace flashplus {
namespace kernels {

template <typename Element, int kHeadDim, bool kHasDropout>
cudaError_t launch_bwd_sm80(const BwdParams& params, cudaStream_t stream) {
  using Traits = BwdTraitsSm80<Element, kHeadDim, kHasDropout>;
  const int dtype = std::is_same_v<Element, cute::half_t> ? FLASHPLUS_DTYPE_FLOAT16 : FLASHPLUS_DTYPE_BFLOAT16;
  cudaError_t status = launch_bwd_preprocess(params, dtype, stream);
  if (status != cudaSuccess) return status;
  const FwdParams& f = params.fwd;
  const int64_t dkdv_grid =
      static_cast<int64_t>((params.num_n_blocks + Traits::kKeyGroups - 1) / Traits::kKeyGroups) * f.h_k * f.batch;
  if (params.dq_accum) {  // fused: dK/dV kernel adds dQ into dq_accum (zeroed by the pre-pass)
    status = launch_with_smem(bwd_dkdv_kernel_sm80<Traits, true>, dkdv_grid, Traits::kNThreadsDkDv, Traits::kSmemBytesDkDv,
                              params, stream);
    if (status != cudaSuccess) return status;
    return launch_bwd_dq_convert(params, dtype, stream);
  }
  status = launch_with_smem(bwd_dkdv_kernel_sm80<Traits, false>, dkdv_grid, Traits::kNThreadsDkDv, Traits::kSmemBytesDkDv,
                            params, stream);
  if (status != cudaSuccess) return status;
  return launch_with_smem(bwd_dq_kernel_sm80<Traits>, static_cast<int64_t>(params.num_m_blocks) * f.h_q * f.batch,
                          Traits::kNThreads, Traits::kSmemBytesDq, params, stream);
}

}  // namespace kernels
}  // namespace flashplus
