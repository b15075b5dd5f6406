// dependent_launch.cuh — programmatic dependent launch (sm90+): a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization (launch_combine.cu) may be scheduled before
// the kernel ahead of it in the stream has finished.
//
// The kernel ahead calls allow_dependent_launch() (its dependents may be scheduled once all its
// CTAs have called it or exited); the dependent calls wait_for_prerequisite_grid() before it reads
// anything the kernel ahead writes (it returns once that grid has finished and its writes are
// visible). Both are no-ops where the code is compiled for an architecture below sm90, which is
// why the host turns the launch attribute on only for code compiled for sm90 or newer.
#pragma once

namespace flashplus {
namespace kernels {

__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

__device__ __forceinline__ void wait_for_prerequisite_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

}  // namespace kernels
}  // namespace flashplus
