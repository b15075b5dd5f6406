// launch_bwd_preprocess.cu — host launcher of bwd_preprocess_kernel.cuh.
#include "bwd_preprocess_kernel.cuh"

namespace flashplus {
namespace kernels {

cudaError_t launch_bwd_preprocess(const BwdParams& params, int dtype, cudaStream_t stream) {
  const FwdParams& f = params.fwd;
  const int64_t rows = static_cast<int64_t>(f.batch) * f.max_seqlen_q * f.h_q;
  if (rows == 0) return cudaSuccess;
  const int64_t blocks = (rows + kBwdPreprocessWarpsPerBlock - 1) / kBwdPreprocessWarpsPerBlock;
  if (blocks > INT32_MAX) return cudaErrorInvalidConfiguration;
  bwd_preprocess_kernel<<<static_cast<unsigned>(blocks), kBwdPreprocessWarpsPerBlock * 32, 0, stream>>>(params, dtype);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace flashplus
