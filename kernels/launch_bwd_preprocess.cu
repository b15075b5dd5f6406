// launch_bwd_preprocess.cu — host launchers of the backward's pre-pass (bwd_preprocess_kernel.cuh)
// and of the fused mode's dQ post-pass (bwd_dq_convert_kernel.cuh). Both run one CTA per
// (sequence, 8-row block).
#include "bwd_dq_convert_kernel.cuh"
#include "bwd_preprocess_kernel.cuh"

namespace flashplus {
namespace kernels {
namespace {

// One CTA per (sequence, kRowPassRows-row block) of the longest sequence, or 0 when there are none.
cudaError_t row_blocks(const FwdParams& f, unsigned& blocks) {
  const int64_t count = static_cast<int64_t>(f.batch) * ((f.max_seqlen_q + kRowPassRows - 1) / kRowPassRows);
  if (count > INT32_MAX) return cudaErrorInvalidConfiguration;
  blocks = f.h_q > 0 ? static_cast<unsigned>(count) : 0;
  return cudaSuccess;
}

}  // namespace

cudaError_t launch_bwd_preprocess(const BwdParams& params, int dtype, cudaStream_t stream) {
  unsigned blocks = 0;
  const cudaError_t status = row_blocks(params.fwd, blocks);
  if (status != cudaSuccess || blocks == 0) return status;
  bwd_preprocess_kernel<<<blocks, kRowPassThreads, 0, stream>>>(params, dtype);
  return cudaGetLastError();
}

cudaError_t launch_bwd_dq_convert(const BwdParams& params, int dtype, cudaStream_t stream) {
  unsigned blocks = 0;
  const cudaError_t status = row_blocks(params.fwd, blocks);
  if (status != cudaSuccess || blocks == 0) return status;
  bwd_dq_convert_kernel<<<blocks, kRowPassThreads, 0, stream>>>(params, dtype);
  return cudaGetLastError();
}

}  // namespace kernels
}  // namespace flashplus
