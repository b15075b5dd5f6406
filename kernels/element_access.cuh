// element_access.cuh — load / store one element of a runtime-typed float tensor as fp32.
//
// For the small memory-bound kernels (combine, KV append, S_dmask) whose tensors may be fp16,
// bf16 or fp32 at run time; the branch is uniform across a launch, so it costs nothing measurable.
#pragma once

#include <cstdint>

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

// Eight consecutive fp16 / bf16 elements from one 16-byte load (index a multiple of 8, base 16-byte
// aligned).
__device__ __forceinline__ void load8_as_float(const void* base, int64_t index, int dtype, float out[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(base) + index);
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    if (dtype == FLASHPLUS_DTYPE_FLOAT16) {
      const float2 pair = __half22float2(*reinterpret_cast<const __half2*>(&words[w]));
      out[2 * w] = pair.x;
      out[2 * w + 1] = pair.y;
    } else {
      const float2 pair = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&words[w]));
      out[2 * w] = pair.x;
      out[2 * w + 1] = pair.y;
    }
  }
}

// Four consecutive fp16 / bf16 elements with one 8-byte store (index a multiple of 4, base 8-byte
// aligned).
__device__ __forceinline__ void store4_from_float(void* base, int64_t index, int dtype, const float values[4]) {
  uint32_t words[2];
#pragma unroll
  for (int w = 0; w < 2; ++w) {
    if (dtype == FLASHPLUS_DTYPE_FLOAT16) {
      const __half2 pair = __floats2half2_rn(values[2 * w], values[2 * w + 1]);
      words[w] = *reinterpret_cast<const uint32_t*>(&pair);
    } else {
      const __nv_bfloat162 pair = __floats2bfloat162_rn(values[2 * w], values[2 * w + 1]);
      words[w] = *reinterpret_cast<const uint32_t*>(&pair);
    }
  }
  *reinterpret_cast<uint2*>(static_cast<uint16_t*>(base) + index) = make_uint2(words[0], words[1]);
}

}  // namespace kernels
}  // namespace flashplus
