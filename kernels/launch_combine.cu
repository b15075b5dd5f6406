// launch_combine.cu — host launchers of combine_kernel.cuh (C ABI combine) and
// split_combine_kernel.cuh (the forward's split-KV merge).
#include <atomic>
#include <cstdlib>
#include <cstring>

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

// Programmatic dependent launch of the split-KV combine: the kernel may be scheduled while the
// split kernel before it is still running (its CTAs trigger at their start, dependent_launch.cuh),
// and it waits at griddepcontrol.wait until that grid has finished and its writes are visible
// (split_combine_kernel.cuh). At batch 1 a decode step is a few microseconds of work in two
// kernels, so the second kernel's launch latency is a large share of it (run 14: the combine
// took 4-7 us of a 16-27 us step). Only where the code that runs has the wait: a device of
// compute capability >= 9.0 running code compiled for one (ptxVersion >= 90; code JIT-compiled
// from an older PTX lacks it and must not start early). FLASHPLUS_COMBINE_PDL=0 turns it off
// (A/B timing; read per call).
static cudaError_t combine_may_launch_early(bool& allowed) {
  allowed = false;
  const char* env = std::getenv("FLASHPLUS_COMBINE_PDL");
  if (env && std::strcmp(env, "0") == 0) return cudaSuccess;
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  // Per device: the answer cannot change within a process (one image per device and kernel).
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cached[kMaxDevices] = {};  // 0 unknown, 1 no, 2 yes
  const int known = device < kMaxDevices ? cached[device].load(std::memory_order_relaxed) : 0;
  if (known != 0) {
    allowed = known == 2;
    return cudaSuccess;
  }
  int major = 0;
  e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  if (e != cudaSuccess) return e;
  cudaFuncAttributes attributes;
  e = cudaFuncGetAttributes(&attributes, split_combine_kernel);
  if (e != cudaSuccess) return e;
  allowed = major >= 9 && attributes.ptxVersion >= 90;
  if (device < kMaxDevices) cached[device].store(allowed ? 2 : 1, std::memory_order_relaxed);
  return cudaSuccess;
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
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(blocks));
  config.blockDim = dim3(kSplitCombineWarpsPerBlock * 32);
  config.stream = stream;
  cudaLaunchAttribute attribute = {};
  bool dependent_launch = false;
  const cudaError_t e = combine_may_launch_early(dependent_launch);
  if (e != cudaSuccess) return e;
  if (dependent_launch) {
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
