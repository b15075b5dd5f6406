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

// The virtual architecture the split-KV combine's code that runs on the current device was
// compiled for (x10): only code compiled for sm90 or newer waits for the split kernel at
// griddepcontrol.wait (dependent_launch.cuh), so only that may be launched early.
cudaError_t split_combine_ptx_version(int& version) {
  cudaFuncAttributes attributes;
  const cudaError_t e = cudaFuncGetAttributes(&attributes, split_combine_kernel);
  version = e == cudaSuccess ? attributes.ptxVersion : 0;
  return e;
}

cudaError_t launch_split_combine(const SplitCombineParams& params, bool launch_early, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(params.batch) * params.max_seqlen_q * params.heads;
  if (rows == 0) return cudaSuccess;
  if (params.num_splits < 1 || params.num_splits > kMaxSplitsKv || params.padded_head_dim % 32 != 0 ||
      params.padded_head_dim > kSplitCombineMaxHeadDim)
    return cudaErrorInvalidValue;
  const int64_t blocks = params.num_splits >= kSplitCombineBlockPerRowSplits
                             ? rows
                             : (rows + kSplitCombineWarpsPerBlock - 1) / kSplitCombineWarpsPerBlock;
  if (blocks > INT32_MAX) return cudaErrorInvalidConfiguration;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(blocks));
  config.blockDim = dim3(kSplitCombineWarpsPerBlock * 32);
  config.stream = stream;
  cudaLaunchAttribute attribute = {};
  if (launch_early) {
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  return cudaLaunchKernelEx(&config, split_combine_kernel, params);
}

// cudaErrorNoKernelImageForDevice when this build has no code the current device can run.
cudaError_t check_kernel_image() {
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, combine_kernel);
}

}  // namespace kernels
}  // namespace flashplus
