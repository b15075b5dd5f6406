#include "oracle/kvcache_oracle.h"

#include <vector>

#include "oracle/head_attention.h"
#include "oracle/rotary_reference.h"
#include "oracle/sequence_layout.h"
#include "support/tensor_access.h"

namespace oracle {

using fptest::load_int;
using fptest::RefArray;

KvcacheReference reference_kvcache(const flashplus_kvcache_args& a, const Rounding& round) {
  const int64_t batch = a.q.sizes[0], s_q = a.q.sizes[1], h_q = a.q.sizes[2], d = a.q.sizes[3];
  const int64_t h_k = a.k_cache.sizes[2];
  const int64_t group = h_q / h_k;
  const bool paged = a.block_table.data != nullptr;
  const int64_t page_size = paged ? a.k_cache.sizes[1] : 0;
  const int64_t capacity = paged ? a.block_table.sizes[1] * page_size : a.k_cache.sizes[1];
  const int64_t s_new = a.k_new.data ? a.k_new.sizes[1] : 0;
  const bool rotary = a.rotary_cos.data != nullptr;
  // Non-causal, non-local attention rotates every query row as if it sat at the cache end.
  const bool q_rows_at_own_position = a.is_causal || a.window_left >= 0 || a.window_right >= 0;

  KvcacheReference ref;
  ref.k_cache = fptest::read_tensor(a.k_cache);
  ref.v_cache = fptest::read_tensor(a.v_cache);
  ref.out = RefArray({batch, s_q, h_q, d});
  ref.lse = RefArray({batch, h_q, s_q});

  for (int64_t i = 0; i < batch; ++i) {
    const int64_t c = a.cache_seqlens.data ? load_int(a.cache_seqlens, i) : capacity;
    const int64_t entry = a.cache_batch_idx.data ? load_int(a.cache_batch_idx, i) : i;
    const int64_t leftpad = a.cache_leftpad.data ? load_int(a.cache_leftpad, i) : 0;
    auto cache_row = [&](int64_t row) {
      return paged ? paged_row(a.block_table, page_size, i, row) : dense_row(entry, row);
    };

    // 1. Append k_new (rotated at positions c + r) and v_new into the cache.
    std::vector<RowAddress> appended, new_rows;
    for (int64_t r = 0; r < s_new; ++r) {
      appended.push_back(cache_row(c + r));
      new_rows.push_back(dense_row(i, r));
    }
    for (int64_t kh = 0; kh < h_k && s_new > 0; ++kh) {
      std::vector<double> k_rows = gather_rows(a.k_new, new_rows, kh);
      const std::vector<double> v_rows = gather_rows(a.v_new, new_rows, kh);
      if (rotary)
        for (int64_t r = 0; r < s_new; ++r)
          rotate_row(&k_rows[r * d], a.rotary_cos, a.rotary_sin, c + r, a.rotary_interleaved != 0,
                     round);
      scatter_rows(ref.k_cache, appended, kh, k_rows, false);
      scatter_rows(ref.v_cache, appended, kh, v_rows, false);
    }

    // 2. Attention of q over cache rows [leftpad, c + s_new); key j is row leftpad + j.
    std::vector<RowAddress> keys, queries;
    for (int64_t row = leftpad; row < c + s_new; ++row) keys.push_back(cache_row(row));
    for (int64_t r = 0; r < s_q; ++r) queries.push_back(dense_row(i, r));

    for (int64_t h = 0; h < h_q; ++h) {
      HeadInputs in;
      in.s_q = s_q;
      in.s_k = static_cast<int64_t>(keys.size());
      in.head_dim = d;
      in.q = gather_rows(a.q, queries, h);
      if (rotary)
        for (int64_t r = 0; r < s_q; ++r)
          rotate_row(&in.q[r * d], a.rotary_cos, a.rotary_sin,
                     q_rows_at_own_position ? c + r : c, a.rotary_interleaved != 0, round);
      in.k = gather_rows(ref.k_cache, keys, h / group);
      in.v = gather_rows(ref.v_cache, keys, h / group);

      LogitRule rule;
      rule.softmax_scale = a.softmax_scale;
      rule.softcap = a.softcap;
      rule.window_left = a.window_left;
      rule.window_right = a.is_causal ? 0 : a.window_right;
      if (a.alibi_slopes.data) {
        rule.has_alibi = true;
        const int64_t index[2] = {i, h};
        rule.alibi_slope = a.alibi_slopes.ndim == 1 ? fptest::load_element(a.alibi_slopes, index + 1)
                                                    : fptest::load_element(a.alibi_slopes, index);
      }
      const HeadForward fw = head_forward(in, rule, HeadDropout{}, round);
      scatter_rows(ref.out, queries, h, fw.out, false);
      for (int64_t r = 0; r < s_q; ++r) ref.lse.at({i, h, r}) = fw.lse[r];
    }
  }
  return ref;
}

}  // namespace oracle
