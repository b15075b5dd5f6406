// element_access.cuh — load / store one element of a runtime-typed float tensor as fp32.
//
// For the small memory-bound kernels (combine, KV append, S_dmask) whose tensors may be fp16,
// bf16 or fp32 at run time; the branch is uniform across a launch, so it costs nothing measurable.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "flashplus/flashplus.h"

namespace flashplus {
namespace kernels {

__device__ __forceinline__ float load_as_float(const void* base, int64_t index, int dtype) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT16: return __half2float(static_cast<const __half*>(base)[index]);
    case FLASHPLUS_DTYPE_BFLOAT16: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[index]);
    default: return static_cast<const float*>(base)[index];
  }
}

__device__ __forceinline__ void store_from_float(void* base, int64_t index, int dtype, float value) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT16: static_cast<__half*>(base)[index] = __float2half_rn(value); break;
    case FLASHPLUS_DTYPE_BFLOAT16: static_cast<__nv_bfloat16*>(base)[index] = __float2bfloat16_rn(value); break;
    default: static_cast<float*>(base)[index] = value; break;
  }
}

}  // namespace kernels
}  // namespace flashplus
