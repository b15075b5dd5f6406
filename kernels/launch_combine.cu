// launch_combine.cu — host launchers of combine_kernel.cuh (C ABI combine) and
// split_combine_kernel.cuh (the forward's split-KV merge).
#include "combine_kernel.cuh"
#include "split_combine_kernel.cuh"

namespace flashplus {
namespace kernels {

cudaError_t launch_combine(const CombineParams& params, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(params.batch) * params.seqlen * params.heads;
  if (rows == 0) return cudaSuccess;
  const int64_t blocks = (rows + kCombineWarpsPerBlock - 1) / kCombineWarpsPerBlock;
  if (blocks > INT32_MAX) return cudaErrorInvalidConfiguration;
  combine_kernel<<<static_cast<unsigned>(blocks), kCombineWarpsPerBlock * 32, 0, stream>>>(params);
  return cudaGetLastError();
}

cudaError_t launch_split_combine(const SplitCombineParams& params, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(params.batch) * params.max_seqlen_q * params.heads;
  if (rows == 0) return cudaSuccess;
  if (params.num_splits < 1 || params.num_splits > kMaxSplitsKv || params.padded_head_dim % 32 != 0 ||
      params.padded_head_dim > kSplitCombineMaxHeadDim)
    return cudaErrorInvalidValue;
  const int64_t blocks = params.num_splits >= kSplitCombineBlockPerRowSplits
                             ? rows
                             : (rows + kSplitCombineWarpsPerBlock - 1) / kSplitCombineWarpsPerBlock;
  if (blocks > INT32_MAX) return cudaErrorInvalidConfiguration;
  split_combine_kernel<<<static_cast<unsigned>(blocks), kSplitCombineWarpsPerBlock * 32, 0, stream>>>(params);
  return cudaGetLastError();
}

// cudaErrorNoKernelImageForDevice when this build has no code the current device can run.
cudaError_t check_kernel_image() {
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, combine_kernel);
}

}  // namespace kernels
}  // namespace flashplus
