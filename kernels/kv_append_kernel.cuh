// kv_append_kernel.cuh — the pre-pass of a KV-cache call: append k_new / v_new into the cache
// (rotary applied to k_new) and write the rotated q into a workspace.
//
// For batch entry b with c = cache_seqlens[b] (absolute cache row, leftpad counted):
//   k_new row r -> cache row c + r (of entry cache_batch_idx[b], or of page block_table[b, (c+r) / ps]
//   at row (c + r) % ps), rotated at position c + r; v_new row r -> the same row, unrotated;
//   q row r -> q_rotated row r, rotated at position c + r (c for every row when not causal/local).
// Rotary on the first rotary_dim features, in fp32, rounded once: interleaved pairs (2t, 2t+1),
// NeoX pairs (t, t + rotary_dim / 2); both use cos/sin[pos, t].
//
// One warp per (row, head); lanes stride over features and read their pair partner directly.
//
// Index contents are checked here (see seqlen_info.cuh for why on the device): a row whose cache
// row, cache entry, page or rotary position is out of range is not written to the cache, its
// rotated q row becomes NaN, and the FLASHPLUS_INDEX_ERROR_* bit is recorded.
#pragma once

#include "element_access.cuh"
#include "launch.h"

namespace flashplus {
namespace kernels {

constexpr int kKvAppendWarpsPerBlock = 4;

// Feature f of a row rotated at position pos (or copied when f >= rotary_dim).
__device__ __forceinline__ float rotated_feature(const KvAppendParams& p, const void* row, int f, int64_t pos) {
  const float x = load_as_float(row, f, p.dtype);
  if (f >= p.rotary_dim) return x;
  const int half = p.rotary_dim / 2;
  int t, partner;
  bool first;
  if (p.rotary_interleaved) {
    t = f / 2;
    first = (f % 2) == 0;
    partner = first ? f + 1 : f - 1;
  } else {
    first = f < half;
    t = first ? f : f - half;
    partner = first ? f + half : f - half;
  }
  const float y = load_as_float(row, partner, p.dtype);
  const float c = load_as_float(p.rotary_cos, pos * p.rotary_row_stride + t, p.dtype);
  const float s = load_as_float(p.rotary_sin, pos * p.rotary_row_stride + t, p.dtype);
  return first ? x * c - y * s : x * c + y * s;
}

__device__ __forceinline__ void report_index_error(const KvAppendParams& p, uint32_t bits) {
  if (p.index_errors) atomicOr(p.index_errors, bits);
}

// Whether rows [first, first + rows) exist in the rotary tables (always when rotary is off).
__device__ __forceinline__ bool rotary_rows_exist(const KvAppendParams& p, int64_t first, int64_t rows) {
  return p.rotary_dim == 0 || (first >= 0 && first + rows <= p.rotary_rows);
}

__global__ void __launch_bounds__(kKvAppendWarpsPerBlock * 32) kv_append_kernel(const __grid_constant__ KvAppendParams p) {
  const int lane = threadIdx.x % 32;
  int64_t item = static_cast<int64_t>(blockIdx.x) * kKvAppendWarpsPerBlock + threadIdx.x / 32;
  const int element_size = p.dtype == FLASHPLUS_DTYPE_FLOAT32 ? 4 : 2;

  const int64_t k_items = p.k_new.data ? static_cast<int64_t>(p.batch) * p.s_new * p.h_k : 0;
  if (item < k_items) {
    const int h = static_cast<int>(item % p.h_k);
    const int r = static_cast<int>((item / p.h_k) % p.s_new);
    const int b = static_cast<int>(item / p.h_k / p.s_new);
    const int64_t cache_start = p.cache_seqlens ? p.cache_seqlens[b] : p.cache_capacity;
    const int64_t cache_row = cache_start + static_cast<int64_t>(r);
    if (cache_start < 0 || cache_start + p.s_new > p.cache_capacity) {
      report_index_error(p, FLASHPLUS_INDEX_ERROR_SEQUSED_K);
      return;
    }
    if (!rotary_rows_exist(p, cache_start, p.s_new)) {
      report_index_error(p, FLASHPLUS_INDEX_ERROR_SEQUSED_K);
      return;
    }
    int64_t k_dst, v_dst;
    if (p.block_table) {
      const int64_t page = p.block_table[b * p.block_table_batch_stride + cache_row / p.page_size];
      if (page < 0 || page >= p.cache_entries) {
        report_index_error(p, FLASHPLUS_INDEX_ERROR_BLOCK_TABLE);
        return;
      }
      const int64_t in_page = cache_row % p.page_size;
      k_dst = page * p.k_cache.batch_stride + in_page * p.k_cache.row_stride + h * p.k_cache.head_stride;
      v_dst = page * p.v_cache.batch_stride + in_page * p.v_cache.row_stride + h * p.v_cache.head_stride;
    } else {
      const int64_t entry = p.cache_batch_idx ? p.cache_batch_idx[b] : b;
      if (entry < 0 || entry >= p.cache_entries) {
        report_index_error(p, FLASHPLUS_INDEX_ERROR_CACHE_BATCH_IDX);
        return;
      }
      k_dst = entry * p.k_cache.batch_stride + cache_row * p.k_cache.row_stride + h * p.k_cache.head_stride;
      v_dst = entry * p.v_cache.batch_stride + cache_row * p.v_cache.row_stride + h * p.v_cache.head_stride;
    }
    const char* k_src = static_cast<const char*>(p.k_new.data) +
                        (b * p.k_new.batch_stride + r * p.k_new.row_stride + h * p.k_new.head_stride) * element_size;
    const char* v_src = static_cast<const char*>(p.v_new.data) +
                        (b * p.v_new.batch_stride + r * p.v_new.row_stride + h * p.v_new.head_stride) * element_size;
    for (int f = lane; f < p.head_dim; f += 32) {
      store_from_float(p.k_cache.data, k_dst + f, p.dtype, rotated_feature(p, k_src, f, cache_row));
      store_from_float(p.v_cache.data, v_dst + f, p.dtype, load_as_float(v_src, f, p.dtype));
    }
    return;
  }
  item -= k_items;

  const int64_t q_items = p.q_rotated.data ? static_cast<int64_t>(p.batch) * p.s_q * p.h_q : 0;
  if (item < q_items) {
    const int h = static_cast<int>(item % p.h_q);
    const int r = static_cast<int>((item / p.h_q) % p.s_q);
    const int b = static_cast<int>(item / p.h_q / p.s_q);
    const int64_t cache_end = p.cache_seqlens ? p.cache_seqlens[b] : p.cache_capacity;
    const int64_t position = cache_end + (p.rotary_q_all_rows_at_cache_end ? 0 : r);
    const char* q_src = static_cast<const char*>(p.q.data) +
                        (b * p.q.batch_stride + r * p.q.row_stride + h * p.q.head_stride) * element_size;
    const int64_t q_dst = b * p.q_rotated.batch_stride + r * p.q_rotated.row_stride + h * p.q_rotated.head_stride;
    if (!rotary_rows_exist(p, position, 1)) {
      report_index_error(p, FLASHPLUS_INDEX_ERROR_SEQUSED_K);
      for (int f = lane; f < p.head_dim; f += 32) store_from_float(p.q_rotated.data, q_dst + f, p.dtype, NAN);
      return;
    }
    for (int f = lane; f < p.head_dim; f += 32)
      store_from_float(p.q_rotated.data, q_dst + f, p.dtype, rotated_feature(p, q_src, f, position));
  }
}

}  // namespace kernels
}  // namespace flashplus
