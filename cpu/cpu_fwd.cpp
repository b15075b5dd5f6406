// cpu_fwd.cpp — the CPU forward: tiled online softmax, fp32 accumulation, O(seqlen) memory.
//
// Work item = (sequence, query head, tile of kBlockM query rows). For each tile the visible key
// range is walked in tiles of kBlockN keys; each K/V tile is converted to fp32 once and reused by
// every row of the query tile (the CPU analogue of the GPU kernels' shared-memory tiles). With
// num_splits > 1 the key range is cut into contiguous chunks whose partial (out, lse) are merged by
// LSE exactly as the combine entry point does, so the split path is exercised on CPU too.
#include <cmath>
#include <limits>
#include <vector>

#include "backend.h"
#include "cpu_dtype.h"
#include "cpu_merge.h"
#include "cpu_scores.h"
#include "cpu_sequences.h"
#include "cpu_threads.h"

namespace flashplus {
namespace cpu {
namespace {

constexpr int kBlockM = 64;
constexpr int kBlockN = 64;
constexpr float kInf = std::numeric_limits<float>::infinity();

// Running softmax state of one query tile over a chunk of keys.
struct TileState {
  int rows = 0, d = 0;
  std::vector<float> row_max, row_sum, acc;  // acc: rows x d, unnormalised

  void reset(int rows_, int d_) {
    rows = rows_;
    d = d_;
    row_max.assign(rows, -kInf);
    row_sum.assign(rows, 0.f);
    acc.assign(static_cast<size_t>(rows) * d, 0.f);
  }
};

class ForwardTile {
 public:
  ForwardTile(const FwdProblem& p, int64_t seq, int64_t head, int64_t row0)
      : p_(p), seq_(seq), head_(head), kv_head_(head / (p.h_q / p.h_k)), row0_(row0),
        extent_(resolve_sequence(p.seqs, seq)), d_(p.head_dim) {
    rule_ = ScoreRule::make(p.mods, seq, head, extent_.s_q, extent_.s_k);
    rows_ = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(kBlockM, extent_.s_q - row0)));
  }

  void run() {
    if (p_.s_dmask) write_mask_padding();
    if (rows_ == 0) return;
    load_queries();
    int64_t lo, hi, last_lo, last_hi;
    rule_.key_range(row0_, lo, hi);
    rule_.key_range(row0_ + rows_ - 1, last_lo, last_hi);
    const int64_t key_begin = lo, key_end = std::max(hi, last_hi);

    const int splits = std::max(1, p_.num_splits);
    if (splits == 1 || key_end <= key_begin) {
      state_.reset(rows_, d_);
      accumulate(key_begin, key_end);
      finalize_single();
    } else {
      finalize_split(key_begin, key_end, splits);
    }
    if (p_.s_dmask) write_mask();
  }

 private:
  void load_queries() {
    q_.resize(static_cast<size_t>(rows_) * d_);
    for (int r = 0; r < rows_; ++r)
      load_row(element_ptr(p_.q.data, p_.q.dtype, query_offset(p_.q, extent_, row0_ + r, head_)),
               p_.q.dtype, d_, &q_[static_cast<size_t>(r) * d_]);
  }

  void load_keys(int64_t j0, int n) {
    k_.resize(static_cast<size_t>(n) * d_);
    v_.resize(static_cast<size_t>(n) * d_);
    for (int c = 0; c < n; ++c) {
      load_row(element_ptr(p_.k.data, p_.k.dtype, key_offset(p_.seqs, p_.k, extent_, seq_, j0 + c, kv_head_)),
               p_.k.dtype, d_, &k_[static_cast<size_t>(c) * d_]);
      load_row(element_ptr(p_.v.data, p_.v.dtype, key_offset(p_.seqs, p_.v, extent_, seq_, j0 + c, kv_head_)),
               p_.v.dtype, d_, &v_[static_cast<size_t>(c) * d_]);
    }
  }

  uint32_t batch_head() const { return static_cast<uint32_t>(seq_ * p_.h_q + head_); }

  // Online softmax over keys [key_begin, key_end) into state_.
  void accumulate(int64_t key_begin, int64_t key_end) {
    const bool dropout = p_.dropout.p > 0.f;
    const float keep_scale = dropout ? 1.f / (1.f - p_.dropout.p) : 1.f;
    float scores[kBlockN];
    for (int64_t j0 = key_begin; j0 < key_end; j0 += kBlockN) {
      const int n = static_cast<int>(std::min<int64_t>(kBlockN, key_end - j0));
      load_keys(j0, n);
      for (int r = 0; r < rows_; ++r) {
        const int64_t row = row0_ + r;
        int64_t lo, hi;
        rule_.key_range(row, lo, hi);
        lo = std::max(lo, j0);
        hi = std::min(hi, j0 + n);
        if (lo >= hi) continue;
        const float* qr = &q_[static_cast<size_t>(r) * d_];
        float tile_max = -kInf;
        for (int64_t j = lo; j < hi; ++j) {
          const float s = rule_.logit(dot_product(qr, &k_[static_cast<size_t>(j - j0) * d_], d_), row, j);
          scores[j - j0] = s;
          tile_max = std::max(tile_max, s);
        }
        const float new_max = std::max(state_.row_max[r], tile_max);
        if (new_max == -kInf) continue;
        const float correction = std::exp(state_.row_max[r] - new_max);
        float* acc = &state_.acc[static_cast<size_t>(r) * d_];
        if (correction != 1.f) {
          state_.row_sum[r] *= correction;
          for (int x = 0; x < d_; ++x) acc[x] *= correction;
        }
        for (int64_t j = lo; j < hi; ++j) {
          float prob = std::exp(scores[j - j0] - new_max);
          state_.row_sum[r] += prob;
          if (dropout) {
            const bool keep = p_.dropout.stream.keep(batch_head(), static_cast<uint32_t>(row),
                                                     static_cast<uint32_t>(j));
            prob = keep ? prob * keep_scale : 0.f;
          }
          if (prob == 0.f) continue;
          const float* vj = &v_[static_cast<size_t>(j - j0) * d_];
          for (int x = 0; x < d_; ++x) acc[x] += prob * vj[x];
        }
        state_.row_max[r] = new_max;
      }
    }
  }

  float row_lse(int r) const {
    return state_.row_sum[r] > 0.f ? state_.row_max[r] + std::log(state_.row_sum[r]) : kInf;
  }

  void store_row_result(int r, const float* values, float lse) {
    const int64_t row = row0_ + r;
    store_row(values, d_, element_ptr(p_.out.data, p_.out.dtype, query_offset(p_.out, extent_, row, head_)),
              p_.out.dtype);
    if (p_.lse.data) p_.lse.data[stats_offset(p_.lse, extent_, row, head_)] = lse;
    if (p_.s_dmask) lse_[r] = lse;
  }

  void finalize_single() {
    lse_.assign(rows_, kInf);
    std::vector<float> values(d_);
    for (int r = 0; r < rows_; ++r) {
      const float sum = state_.row_sum[r];
      const float* acc = &state_.acc[static_cast<size_t>(r) * d_];
      for (int x = 0; x < d_; ++x) values[x] = sum > 0.f ? acc[x] / sum : 0.f;
      store_row_result(r, values.data(), row_lse(r));
    }
  }

  void finalize_split(int64_t key_begin, int64_t key_end, int splits) {
    lse_.assign(rows_, kInf);
    const int64_t span = key_end - key_begin;
    const int64_t chunk = (span + splits - 1) / splits;
    std::vector<float> partial_out(static_cast<size_t>(splits) * rows_ * d_, 0.f);
    std::vector<float> partial_lse(static_cast<size_t>(splits) * rows_, kInf);
    for (int s = 0; s < splits; ++s) {
      const int64_t b = key_begin + s * chunk, e = std::min(key_end, b + chunk);
      state_.reset(rows_, d_);
      if (b < e) accumulate(b, e);
      for (int r = 0; r < rows_; ++r) {
        partial_lse[static_cast<size_t>(s) * rows_ + r] = row_lse(r);
        const float sum = state_.row_sum[r];
        for (int x = 0; x < d_; ++x)
          partial_out[(static_cast<size_t>(s) * rows_ + r) * d_ + x] =
              sum > 0.f ? state_.acc[static_cast<size_t>(r) * d_ + x] / sum : 0.f;
      }
    }
    std::vector<float> lses(splits), weights(splits), values(d_);
    for (int r = 0; r < rows_; ++r) {
      for (int s = 0; s < splits; ++s) lses[s] = partial_lse[static_cast<size_t>(s) * rows_ + r];
      const float lse = merge_weights(lses.data(), splits, weights.data());
      for (int x = 0; x < d_; ++x) {
        float v = 0.f;
        for (int s = 0; s < splits; ++s)
          if (weights[s] != 0.f) v += weights[s] * partial_out[(static_cast<size_t>(s) * rows_ + r) * d_ + x];
        values[x] = v;
      }
      store_row_result(r, values.data(), lse);
    }
  }

  void* mask_entry(int64_t row, int64_t col) const {
    const int64_t* st = p_.s_dmask_strides;
    return element_ptr(p_.s_dmask, p_.s_dmask_dtype,
                       seq_ * st[0] + head_ * st[1] + row * st[2] + col * st[3]);
  }

  // Rows of this tile inside the mask but outside the sequence, and columns past s_k: zeros.
  void write_mask_padding() const {
    const int64_t mask_rows = p_.seqs.max_seqlen_q, mask_cols = p_.seqs.max_seqlen_k;
    const int64_t row_end = std::min<int64_t>(mask_rows, row0_ + kBlockM);
    for (int64_t row = row0_; row < row_end; ++row) {
      const int64_t first_col = row < extent_.s_q ? std::min<int64_t>(extent_.s_k, mask_cols) : 0;
      for (int64_t col = first_col; col < mask_cols; ++col) store_value(0.f, mask_entry(row, col), p_.s_dmask_dtype);
    }
  }

  // P = exp(logit - lse) for visible keys, negated where dropout dropped it; 0 where masked.
  void write_mask() {
    const int64_t cols = std::min<int64_t>(extent_.s_k, p_.seqs.max_seqlen_k);
    for (int r = 0; r < rows_; ++r) {
      const int64_t row = row0_ + r;
      if (row >= p_.seqs.max_seqlen_q) break;
      int64_t lo, hi;
      rule_.key_range(row, lo, hi);
      const float* qr = &q_[static_cast<size_t>(r) * d_];
      std::vector<float> key(d_);
      for (int64_t j = 0; j < cols; ++j) {
        float value = 0.f;
        if (j >= lo && j < hi) {
          load_row(element_ptr(p_.k.data, p_.k.dtype, key_offset(p_.seqs, p_.k, extent_, seq_, j, kv_head_)),
                   p_.k.dtype, d_, key.data());
          value = std::exp(rule_.logit(dot_product(qr, key.data(), d_), row, j) - lse_[r]);
          if (p_.dropout.p > 0.f &&
              !p_.dropout.stream.keep(batch_head(), static_cast<uint32_t>(row), static_cast<uint32_t>(j)))
            value = -value;
        }
        store_value(value, mask_entry(row, j), p_.s_dmask_dtype);
      }
    }
  }

  const FwdProblem& p_;
  int64_t seq_, head_, kv_head_, row0_;
  SeqExtent extent_;
  int d_;
  int rows_ = 0;
  ScoreRule rule_;
  TileState state_;
  std::vector<float> q_, k_, v_, lse_;
};

}  // namespace

Status fwd(const FwdProblem& p) {
  const int64_t tiles = (static_cast<int64_t>(p.seqs.max_seqlen_q) + kBlockM - 1) / kBlockM;
  const int64_t per_seq = tiles * p.h_q;
  parallel_for(static_cast<int64_t>(p.seqs.batch) * per_seq, [&](int64_t item) {
    const int64_t seq = item / per_seq;
    const int64_t head = (item % per_seq) / tiles;
    const int64_t tile = item % tiles;
    ForwardTile(p, seq, head, tile * kBlockM).run();
  });
  return Status::ok();
}

}  // namespace cpu
}  // namespace flashplus
