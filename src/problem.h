// problem.h — validated, normalised descriptions of one attention call.
//
// Why: the C ABI structs describe tensors generically (sizes, strides, dtype, device). Validation
// (validate.cpp) checks them once and flattens them into these types, which every backend reads.
// Backends therefore never re-check arguments and never see a layout distinction they do not need:
// dense and varlen differ only by cu_seqlens being null, a paged K/V only by block_table.
//
// Masks are normalised here too: is_causal becomes window_right = 0, and windows wider than the
// longest sequence become unbounded (-1), so a backend tests a single window rule.
#pragma once

#include <cstdint>

#include "common/dropout_philox.h"
#include "flashplus/flashplus.h"

namespace flashplus {

// A (batch, row, head, feature) view with a contiguous feature dimension.
// Dense: batch_stride moves between batch entries. Varlen: batch_stride == 0 and the row offset of
// sequence i is cu_seqlens[i]. Paged K/V: "batch" is the page (block) index.
struct RowsView {
  void* data = nullptr;
  flashplus_dtype dtype = FLASHPLUS_DTYPE_FLOAT32;
  int64_t batch_stride = 0;
  int64_t row_stride = 0;
  int64_t head_stride = 0;
};

// LSE-like fp32 view indexed (batch, head, row): dense (b, h, s) or varlen (h, total).
struct RowStatsView {
  float* data = nullptr;
  int64_t batch_stride = 0;  // 0 for varlen
  int64_t head_stride = 0;
  int64_t row_stride = 0;
};

struct Device {
  int32_t type = FLASHPLUS_DEVICE_CPU;
  int32_t index = 0;
};

// Mask and score modifiers shared by forward, backward and KV-cache calls.
struct ScoreMods {
  float softmax_scale = 1.f;
  float softcap = 0.f;          // 0 = off
  int32_t window_left = -1;     // -1 = unbounded; causal already folded into window_right = 0
  int32_t window_right = -1;
  const float* alibi_slopes = nullptr;  // (h_q) or (b, h_q)
  int64_t alibi_batch_stride = 0;       // 0 when slopes are (h_q)
  int64_t alibi_head_stride = 1;
  bool is_causal = false;               // informational; the rule is the window
};

struct DropoutParams {
  float p = 0.f;  // 0 = off
  DropoutStream stream{};
};

// Where sequence i's queries and keys live, after varlen, seqused, leftpad and cache mapping.
struct SeqLayout {
  int32_t batch = 0;
  int32_t max_seqlen_q = 0;            // dense: s_q
  int32_t max_seqlen_k = 0;            // dense: s_k (for paged: logical capacity)
  const int32_t* cu_seqlens_q = nullptr;
  const int32_t* cu_seqlens_k = nullptr;  // with paged K/V: only differences are used
  const int32_t* seqused_k = nullptr;     // absolute end of keys (includes leftpad)
  int32_t seqused_k_extra = 0;            // added to seqused_k[i] (KV-cache: s_new)
  const int32_t* leftpad_k = nullptr;
  const int32_t* cache_batch_idx = nullptr;  // K/V batch entry of sequence i (dense only)
  const int32_t* block_table = nullptr;      // paged when non-null
  int64_t block_table_batch_stride = 0;
  int32_t page_size = 0;
  int32_t max_blocks_per_seq = 0;
  // Extents that index contents must respect; CUDA kernels check them where they read indices.
  int64_t total_q = 0;      // varlen: q.size(0)
  int64_t kv_entries = 0;   // k.size(0): dense batch entries, varlen rows or pages
  int64_t kv_capacity = 0;  // key rows one sequence may address
};

struct FwdProblem {
  Device device;
  int32_t h_q = 0, h_k = 0, head_dim = 0;
  SeqLayout seqs;
  RowsView q, k, v, out;
  RowStatsView lse;
  // Optional debug output (b, h_q, max_s_q, max_s_k); data == nullptr when absent.
  void* s_dmask = nullptr;
  flashplus_dtype s_dmask_dtype = FLASHPLUS_DTYPE_FLOAT32;
  int64_t s_dmask_strides[4] = {0, 0, 0, 0};
  ScoreMods mods;
  DropoutParams dropout;
  int32_t num_splits = 0;
  void* stream = nullptr;
};

struct BwdProblem {
  Device device;
  int32_t h_q = 0, h_k = 0, head_dim = 0;
  SeqLayout seqs;  // never paged, no seqused / leftpad
  RowsView dout, q, k, v, out, dq, dk, dv;
  RowStatsView lse, softmax_d;
  ScoreMods mods;
  DropoutParams dropout;
  bool deterministic = false;
  void* stream = nullptr;
};

// The append + rotary step of a KV-cache call; the attention itself is a FwdProblem.
struct KvAppendProblem {
  Device device;
  int32_t batch = 0, s_q = 0, s_new = 0, h_q = 0, h_k = 0, head_dim = 0;
  RowsView q;              // input q (read)
  RowsView q_rotated;      // workspace q with rotary applied (written) when rotary is on
  RowsView k_new, v_new;   // data == nullptr when nothing is appended
  RowsView k_cache, v_cache;
  SeqLayout seqs;          // cache_seqlens live in seqs.seqused_k (before the append)
  const void* rotary_cos = nullptr;  // (s_ro, rotary_dim / 2), q's dtype
  const void* rotary_sin = nullptr;
  int64_t rotary_row_stride = 0;
  int32_t rotary_dim = 0;            // 0 = off
  int32_t rotary_seqlen = 0;
  bool rotary_interleaved = true;
  bool rotary_q_all_rows_at_cache_end = false;  // non-causal, non-local: every q row at position c
  void* stream = nullptr;
};

struct CombineProblem {
  Device device;
  int32_t num_partials = 0;
  int32_t batch = 0, seqlen = 0, heads = 0, head_dim = 0;
  // Partial i: rows view (b, s, h, d) and stats view (b, h, s).
  const RowsView* out_partials = nullptr;
  const RowStatsView* lse_partials = nullptr;
  RowsView out;
  RowStatsView lse;  // data == nullptr when not requested
  void* stream = nullptr;
};

}  // namespace flashplus
