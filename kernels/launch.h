// launch.h — host-side interface between cuda_backend.cu and the kernel launchers.
//
// Deliberately free of CuTe so that cuda_backend.cu compiles quickly: it sees parameter structs
// and launch functions, never kernel templates. The forward and backward variants are listed in the
// tables that kernels/variants.py generates (dispatch_table.inc).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "flashplus/flashplus.h"
#include "bwd_params.h"
#include "fwd_params.h"
#include "tile_shape.h"

namespace flashplus {
namespace kernels {

using FwdLaunchFn = cudaError_t (*)(const FwdParams&, cudaStream_t);

// Whether a variant of `path` runs on a device of compute capability `arch` (x10): sm80-path code
// runs on every later GPU (machine code or PTX); sm_90a machine code only on 9.0 itself.
constexpr bool path_runs_on(KernelPath path, int arch) {
  return path == KernelPath::kSm90 ? arch == 90 : arch >= static_cast<int>(path);
}

struct FwdVariant {
  const char* name;      // e.g. "fwd_sm80_bf16_hd128_dropout"
  KernelPath path;       // sm80 (mma.sync) or sm90 (wgmma)
  flashplus_dtype dtype;
  int head_dim;          // compiled head dim; serves every head dim <= it
  bool has_dropout;
  bool decode_tile;      // the 16-row tile whose warps split the keys (tile_shape.h); chosen for <= 16 tile rows
  KvLoad kv_load;        // K/V layouts the variant's loader reads (tile_shape.h)
  FwdLaunchFn launch;

  constexpr bool runs_on(int arch) const { return path_runs_on(path, arch); }
  constexpr TileShape tile() const {
    return path == KernelPath::kSm90 ? fwd_tile_shape_sm90(head_dim) : fwd_tile_shape_sm80(head_dim, decode_tile);
  }
  constexpr int smem_bytes(int element_size) const {
    return path == KernelPath::kSm90 ? fwd_smem_bytes_sm90(head_dim, element_size)
                                     : fwd_smem_bytes_sm80(head_dim, element_size, decode_tile, kv_load);
  }
  // Threads that load K and V (kv_layout_fits: whether the specialised loaders fit).
  constexpr int load_threads() const {
    return path == KernelPath::kSm90 ? 32 * tile().num_warps : fwd_load_threads_sm80(head_dim, decode_tile);
  }
};

using BwdLaunchFn = cudaError_t (*)(const BwdParams&, cudaStream_t);

struct BwdVariant {
  const char* name;      // e.g. "bwd_sm80_bf16_hd128"
  KernelPath path;
  flashplus_dtype dtype;
  int head_dim;
  bool has_dropout;
  BwdLaunchFn launch;

  constexpr bool runs_on(int arch) const { return path_runs_on(path, arch); }
  constexpr TileShape tile() const {
    return path == KernelPath::kSm90 ? bwd_tile_shape_sm90(head_dim) : bwd_tile_shape_sm80(head_dim);
  }
  constexpr int smem_bytes(int element_size) const {
    return path == KernelPath::kSm90 ? bwd_smem_bytes_sm90(head_dim, element_size)
                                     : bwd_smem_bytes_sm80(head_dim, element_size);
  }
  constexpr int load_threads() const { return 32 * tile().num_warps; }  // every thread loads
};

// D = rowsum(dout * out) into params.softmax_d (bwd_preprocess_kernel.cuh); dtype of dout / out.
// In fused mode (params.dq_accum set) it also zeroes dq_accum's rows.
cudaError_t launch_bwd_preprocess(const BwdParams& params, int dtype, cudaStream_t stream);

// Fused mode's post-pass: dq = softmax_scale * dq_accum (bwd_dq_convert_kernel.cuh); dtype of dq.
cudaError_t launch_bwd_dq_convert(const BwdParams& params, int dtype, cudaStream_t stream);

// ---- combine (combine_kernel.cuh): out = sum_i exp(lse_i - lse) out_i ----
struct CombinePartial {
  const void* out = nullptr;  // (b, s, h, d), any float dtype
  int dtype = FLASHPLUS_DTYPE_FLOAT32;
  int64_t out_batch_stride = 0, out_row_stride = 0, out_head_stride = 0;
  const float* lse = nullptr;  // (b, h, s)
  int64_t lse_batch_stride = 0, lse_head_stride = 0, lse_row_stride = 0;
};

struct CombineParams {
  int num_partials = 0;  // 1..kMaxSplits
  int batch = 0, seqlen = 0, heads = 0, head_dim = 0;
  CombinePartial partials[kMaxSplits];
  void* out = nullptr;
  int out_dtype = FLASHPLUS_DTYPE_FLOAT32;
  int64_t out_batch_stride = 0, out_row_stride = 0, out_head_stride = 0;
  float* lse = nullptr;  // optional
  int64_t lse_batch_stride = 0, lse_head_stride = 0, lse_row_stride = 0;
  // Optional (batch + 1): out / lse are varlen. Row s of batch entry b goes to global row
  // cu_seqlens[b] + s (rows past the entry's length are skipped); partials stay (b, s)-indexed.
  const int32_t* out_cu_seqlens = nullptr;
  int64_t out_rows_total = 0;  // rows of the varlen output: bad out_cu_seqlens entries are skipped
};

cudaError_t launch_combine(const CombineParams& params, cudaStream_t stream);

// ---- the forward's split-KV merge (split_combine_kernel.cuh) ----
struct SplitCombineParams {
  const float* out_partial = nullptr;  // (num_splits, batch, max_seqlen_q, heads, padded_head_dim)
  const float* lse_partial = nullptr;  // (num_splits, batch, heads, max_seqlen_q)
  int num_splits = 0;                  // 2..kMaxSplitsKv
  int batch = 0, max_seqlen_q = 0, heads = 0, head_dim = 0;
  int padded_head_dim = 0;             // the variant's compiled head dim (a multiple of 32)
  void* out = nullptr;
  int out_dtype = FLASHPLUS_DTYPE_FLOAT32;
  int64_t out_batch_stride = 0, out_row_stride = 0, out_head_stride = 0;
  float* lse = nullptr;  // optional
  int64_t lse_batch_stride = 0, lse_head_stride = 0, lse_row_stride = 0;
  const int32_t* out_cu_seqlens = nullptr;  // as in CombineParams
  int64_t out_rows_total = 0;
};

// launch_early: programmatic dependent launch. The combine may be scheduled while the split kernel
// before it still runs (whose CTAs allow it at their start) and waits at griddepcontrol.wait until
// that grid has finished and its partials are visible (dependent_launch.cuh): at batch 1 a decode
// step is a few microseconds in two kernels, and the second launch's latency is a share of it
// (run 15: 0.3-1.0 us saved at b <= 4). Only where split_combine_ptx_version() >= 90 on a device of
// compute capability >= 9.0 (code JIT-compiled from older PTX lacks the wait).
cudaError_t launch_split_combine(const SplitCombineParams& params, bool launch_early, cudaStream_t stream);
cudaError_t split_combine_ptx_version(int& version);

// ---- KV-cache append + rotary (kv_append_kernel.cuh) ----
struct KvAppendParams {
  int batch = 0, s_q = 0, s_new = 0, h_q = 0, h_k = 0, head_dim = 0;
  int dtype = FLASHPLUS_DTYPE_FLOAT16;
  RowsAddr q, q_rotated;      // q_rotated.data null: q is not rotated
  RowsAddr k_new, v_new;      // k_new.data null: nothing appended
  RowsAddr k_cache, v_cache;  // paged: batch_stride is the page stride
  const int32_t* cache_seqlens = nullptr;  // absolute row of the first new key; null: cache_capacity
  const int32_t* cache_batch_idx = nullptr;
  const int32_t* block_table = nullptr;
  int64_t block_table_batch_stride = 0;
  int page_size = 0;
  int cache_capacity = 0;  // rows per sequence (dense entry, or max_blocks * page_size when paged)
  int64_t cache_entries = 0;  // k_cache.size(0): batch entries, or pages when paged
  uint32_t* index_errors = nullptr;  // FLASHPLUS_INDEX_ERROR_* bits of bad indices, or'ed in
  const void* rotary_cos = nullptr;  // (s_ro, rotary_dim / 2), q's dtype
  const void* rotary_sin = nullptr;
  int64_t rotary_row_stride = 0;
  int rotary_dim = 0;  // 0 = off
  int64_t rotary_rows = 0;  // rotary_cos.size(0): positions past it are an index error
  bool rotary_interleaved = true;
  bool rotary_q_all_rows_at_cache_end = false;
};

cudaError_t launch_kv_append(const KvAppendParams& params, cudaStream_t stream);

// ---- S_dmask debug output (dmask_kernel.cuh): P recomputed from the final LSE ----
struct DmaskParams {
  void* data = nullptr;  // (b, h_q, max_s_q, max_s_k)
  int dtype = FLASHPLUS_DTYPE_FLOAT32;
  int64_t strides[4] = {0, 0, 0, 0};
  int rows = 0, cols = 0;  // max_s_q, max_s_k
  bool has_dropout = false;
};

cudaError_t launch_dmask(const FwdParams& fwd, const DmaskParams& params, int dtype, cudaStream_t stream);

}  // namespace kernels
}  // namespace flashplus
