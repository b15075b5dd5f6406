// launch_bwd_preprocess.cu — host launchers of the backward's pre-pass (bwd_preprocess_kernel.cuh)
// and of the fused mode's dQ post-pass (bwd_dq_convert_kernel.cuh). Both run one warp per
// (batch, row, head).
#include "bwd_dq_convert_kernel.cuh"
#include "bwd_preprocess_kernel.cuh"

namespace flashplus {
namespace kernels {
namespace {

// Blocks of `warps_per_block` warps covering every (batch, row, head), or 0 when there are none.
cudaError_t row_blocks(const FwdParams& f, int warps_per_block, unsigned& blocks) {
  const int64_t rows = static_cast<int64_t>(f.batch) * f.max_seqlen_q * f.h_q;
  const int64_t count = (rows + warps_per_block - 1) / warps_per_block;
  if (count > INT32_MAX) return cudaErrorInvalidConfiguration;
  blocks = static_cast<unsigned>(count);
  return cudaSuccess;
}

}  // namespace

cudaError_t launch_bwd_preprocess(const BwdParams& params, int dtype, cudaStream_t stream) {
  unsigned blocks = 0;
  const cudaError_t status = row_blocks(params.fwd, kBwdPreprocessWarpsPerBlock, blocks);
  if (status != cudaSuccess || blocks == 0) return status;
  bwd_preprocess_kernel<<<blocks, kBwdPreprocessWarpsPerBlock * 32, 0, stream>>>(params, dtype);
  return cudaGetLastError();
}

cudaError_t launch_bwd_dq_convert(const BwdParams& params, int dtype, cudaStream_t stream) {
  unsigned blocks = 0;
  const cudaError_t status = row_blocks(params.fwd, kDqConvertWarpsPerBlock, blocks);
  if (status != cudaSuccess || blocks == 0) return status;
  bwd_dq_convert_kernel<<<blocks, kDqConvertWarpsPerBlock * 32, 0, stream>>>(params, dtype);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace flashplus
