// cpu_kv_append.cpp — the first half of a KV-cache call: rotary on k_new and q, and the in-place
// append of k_new / v_new into the (dense or paged) cache at rows [cache_seqlens, + s_new).
//
// Rotary follows flash-attn: the rotated features are the first rotary_dim, paired either
// interleaved (2t, 2t + 1) or NeoX-style (t, t + rotary_dim / 2); position = absolute cache row.
#include <vector>

#include "backend.h"
#include "cpu_dtype.h"
#include "cpu_sequences.h"
#include "cpu_threads.h"

namespace flashplus {
namespace cpu {
namespace {

// Rotates row[0 .. rotary_dim) in place at `position`.
void rotate(const KvAppendProblem& p, int64_t position, float* row, std::vector<float>& cos,
            std::vector<float>& sin) {
  const int half = p.rotary_dim / 2;
  const flashplus_dtype table_dtype = p.q.dtype;
  load_row(element_ptr(p.rotary_cos, table_dtype, position * p.rotary_row_stride), table_dtype, half, cos.data());
  load_row(element_ptr(p.rotary_sin, table_dtype, position * p.rotary_row_stride), table_dtype, half, sin.data());
  for (int t = 0; t < half; ++t) {
    const int a = p.rotary_interleaved ? 2 * t : t;
    const int b = p.rotary_interleaved ? 2 * t + 1 : t + half;
    const float x0 = row[a], x1 = row[b];
    row[a] = x0 * cos[t] - x1 * sin[t];
    row[b] = x0 * sin[t] + x1 * cos[t];
  }
}

}  // namespace

Status kv_append(const KvAppendProblem& p) {
  const int d = p.head_dim;
  const bool rotary = p.rotary_dim > 0;
  if (p.k_new.data && p.s_new > 0) {
    const int64_t items = static_cast<int64_t>(p.batch) * p.s_new;
    parallel_for(items, [&](int64_t item) {
      const int64_t i = item / p.s_new, r = item % p.s_new;
      const SeqExtent e = resolve_sequence(p.seqs, i);
      // seqs here sees cache_seqlens without the append, so key index s_k + r is the new row r.
      const int64_t j = e.s_k + r;
      const int64_t position = p.seqs.seqused_k[i] + r;
      std::vector<float> row(d), cos(p.rotary_dim / 2 + 1), sin(cos.size());
      SeqExtent new_rows;  // k_new / v_new are dense (b, s_new, h_k, d)
      new_rows.q_batch = i;
      for (int64_t h = 0; h < p.h_k; ++h) {
        load_row(element_ptr(p.k_new.data, p.k_new.dtype, query_offset(p.k_new, new_rows, r, h)), p.k_new.dtype, d,
                 row.data());
        if (rotary) rotate(p, position, row.data(), cos, sin);
        store_row(row.data(), d, element_ptr(p.k_cache.data, p.k_cache.dtype, key_offset(p.seqs, p.k_cache, e, i, j, h)),
                  p.k_cache.dtype);
        load_row(element_ptr(p.v_new.data, p.v_new.dtype, query_offset(p.v_new, new_rows, r, h)), p.v_new.dtype, d,
                 row.data());
        store_row(row.data(), d, element_ptr(p.v_cache.data, p.v_cache.dtype, key_offset(p.seqs, p.v_cache, e, i, j, h)),
                  p.v_cache.dtype);
      }
    });
  }
  if (rotary) {
    const int64_t items = static_cast<int64_t>(p.batch) * p.s_q;
    parallel_for(items, [&](int64_t item) {
      const int64_t i = item / p.s_q, r = item % p.s_q;
      const int64_t position = p.seqs.seqused_k[i] + (p.rotary_q_all_rows_at_cache_end ? 0 : r);
      std::vector<float> row(d), cos(p.rotary_dim / 2 + 1), sin(cos.size());
      SeqExtent dense;
      dense.q_batch = i;
      for (int64_t h = 0; h < p.h_q; ++h) {
        load_row(element_ptr(p.q.data, p.q.dtype, query_offset(p.q, dense, r, h)), p.q.dtype, d, row.data());
        rotate(p, position, row.data(), cos, sin);
        store_row(row.data(), d, element_ptr(p.q_rotated.data, p.q_rotated.dtype, query_offset(p.q_rotated, dense, r, h)),
                  p.q_rotated.dtype);
      }
    });
  }
  return Status::ok();
}

}  // namespace cpu
}  // namespace flashplus
