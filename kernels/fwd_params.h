// fwd_params.h — the flat, device-readable description of one forward launch.
//
// Built on the host (cuda_backend.cu) from a validated FwdProblem, passed by value to the kernel.
// Everything a CTA needs to locate its rows is here as pointers + int64 strides in elements, so
// dense, varlen and paged layouts, GQA and arbitrary strides need no extra template parameters.
#pragma once

#include <cstdint>

#include "common/dropout_philox.h"

namespace flashplus {
namespace kernels {

// (batch, row, head, feature) addressing of a q-, k- or v-shaped tensor; feature stride is 1.
struct RowsAddr {
  void* data = nullptr;
  int64_t batch_stride = 0;  // varlen: 0 (rows are global); paged K/V: page stride
  int64_t row_stride = 0;
  int64_t head_stride = 0;
  // Base pointer and every stride allow 16-byte accesses (cp.async / vector stores).
  bool aligned16 = false;
};

// (batch, head, row) addressing of an fp32 per-row statistic (LSE).
struct StatsAddr {
  float* data = nullptr;
  int64_t batch_stride = 0;  // varlen: 0
  int64_t head_stride = 0;
  int64_t row_stride = 0;
};

struct FwdParams {
  // Tensors. q/out: (b, s_q, h_q, d) or (total_q, h_q, d). k/v: dense, varlen or paged.
  RowsAddr q, k, v, out;
  StatsAddr lse;  // data may be null (KV-cache calls without LSE)

  // Split-KV partials (num_splits > 1): fp32 workspace, dense even for varlen, head dim padded
  // to the compiled kHeadDim:  out_partial (splits, b, max_s_q, h_q, kHeadDim),
  //                            lse_partial (splits, b, h_q, max_s_q).
  float* out_partial = nullptr;
  float* lse_partial = nullptr;
  int num_splits = 1;

  // Problem sizes.
  int batch = 0, h_q = 0, h_k = 0, head_dim = 0;
  int group_size = 1;  // h_q / h_k
  // Packed GQA (query_rows.cuh): CTAs run over K/V heads and their tiles over (query, head in
  // group) rows. Set by the host for short queries without ALiBi or dropout (both per query head).
  bool pack_gqa = false;
  int num_m_blocks = 0;  // tiles of the longest sequence's (packed) rows

  // Sequences (see SeqLayout in problem.h).
  int max_seqlen_q = 0, max_seqlen_k = 0;
  const int32_t* cu_seqlens_q = nullptr;
  const int32_t* cu_seqlens_k = nullptr;
  const int32_t* seqused_k = nullptr;
  int seqused_k_extra = 0;
  const int32_t* leftpad_k = nullptr;
  const int32_t* cache_batch_idx = nullptr;
  const int32_t* block_table = nullptr;
  int64_t block_table_batch_stride = 0;
  int page_size = 0;
  int max_blocks_per_seq = 0;

  // Extents the index tensors' contents are checked against on the device (seqlen_info.cuh):
  // CUDA validation does not read device memory, so every index is checked where it is used.
  int64_t q_rows_total = 0;  // varlen: q.size(0)
  int64_t kv_entries = 0;    // k.size(0): dense batch entries, varlen rows, or pages
  int64_t kv_capacity = 0;   // key rows one sequence may address (s_k, or max_blocks * page_size)
  // FLASHPLUS_INDEX_ERROR_* bits of every bad index met, or'ed in (null: not recorded).
  uint32_t* index_errors = nullptr;

  // Logit modifiers and masks.
  float softmax_scale = 1.f;
  float softcap = 0.f;  // 0 = off
  int window_left = -1, window_right = -1;
  const float* alibi_slopes = nullptr;
  int64_t alibi_batch_stride = 0, alibi_head_stride = 1;

  // Dropout (only read by kHasDropout kernels).
  DropoutStream dropout{};
  float dropout_rescale = 1.f;  // 1 / (1 - p)
};

}  // namespace kernels
}  // namespace flashplus
