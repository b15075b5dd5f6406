// cpu_bwd.cpp — the CPU backward, recomputing P from the saved LSE (never storing s_q x s_k).
//
// Three passes, each over disjoint outputs so that no two threads write the same element and the
// result is deterministic whatever the thread count:
//   1. softmax_d[r] = rowsum(dout_r * out_r)                      work item: (seq, q head, q tile)
//   2. dq_r = scale * sum_j dS_rj * k_j                           work item: (seq, q head, q tile)
//   3. dv_j = sum_r P~_rj dout_r, dk_j = scale * sum_r dS_rj q_r  work item: (seq, kv head, k tile),
//      summing over the query heads of the GQA group inside the item.
// with P_rj = exp(logit_rj - lse_r), P~ = P * dropout_mask / (1 - p),
//      dS_rj = P_rj * (dP~_rj - D_r) * softcap'(rj),  dP~_rj = (dout_r . v_j) * dropout_mask / (1 - p).
// Recomputing S in passes 2 and 3 doubles the QK^T work but keeps both passes free of atomics.
#include <cmath>
#include <vector>

#include "backend.h"
#include "cpu_dtype.h"
#include "cpu_scores.h"
#include "cpu_sequences.h"
#include "cpu_threads.h"

namespace flashplus {
namespace cpu {
namespace {

constexpr int kBlockM = 64;
constexpr int kBlockN = 64;

// The per-(sequence, query head) quantities both gradient passes need.
struct HeadContext {
  const BwdProblem& p;
  int64_t seq, head, kv_head;
  SeqExtent extent;
  ScoreRule rule;
  int d;

  HeadContext(const BwdProblem& problem, int64_t seq_, int64_t head_)
      : p(problem), seq(seq_), head(head_), kv_head(head_ / (problem.h_q / problem.h_k)),
        extent(resolve_sequence(problem.seqs, seq_)), d(problem.head_dim) {
    rule = ScoreRule::make(p.mods, seq, head, extent.s_q, extent.s_k);
  }

  void load_query_side(const RowsView& view, int64_t r, float* dst) const {
    load_row(element_ptr(view.data, view.dtype, query_offset(view, extent, r, head)), view.dtype, d, dst);
  }
  void load_key_side(const RowsView& view, int64_t j, float* dst) const {
    load_row(element_ptr(view.data, view.dtype, key_offset(p.seqs, view, extent, seq, j, kv_head)),
             view.dtype, d, dst);
  }
  float lse(int64_t r) const { return p.lse.data[stats_offset(p.lse, extent, r, head)]; }
  float rowsum(int64_t r) const { return p.softmax_d.data[stats_offset(p.softmax_d, extent, r, head)]; }

  // dS for one (r, j) given q_r.k_j and dout_r.v_j; also returns P~ (dropout-scaled P) for dV.
  float grad_score(float qk, float dov, int64_t r, int64_t j, float lse_r, float d_r, float& p_dropped) const {
    float capped_tanh = 0.f;
    const float logit = rule.logit(qk, r, j, &capped_tanh);
    const float prob = std::exp(logit - lse_r);
    float dp = dov;
    p_dropped = prob;
    if (p.dropout.p > 0.f) {
      const bool keep = p.dropout.stream.keep(static_cast<uint32_t>(seq * p.h_q + head),
                                              static_cast<uint32_t>(r), static_cast<uint32_t>(j));
      const float keep_scale = keep ? 1.f / (1.f - p.dropout.p) : 0.f;
      dp *= keep_scale;
      p_dropped = prob * keep_scale;
    }
    float ds = prob * (dp - d_r);
    if (p.mods.softcap > 0.f) ds *= 1.f - capped_tanh * capped_tanh;
    return ds;
  }
};

void rowsum_pass(const BwdProblem& p, int64_t seq, int64_t head, int64_t row0) {
  const HeadContext ctx(p, seq, head);
  const int64_t row_end = std::min<int64_t>(ctx.extent.s_q, row0 + kBlockM);
  std::vector<float> dout(ctx.d), out(ctx.d);
  for (int64_t r = row0; r < row_end; ++r) {
    ctx.load_query_side(p.dout, r, dout.data());
    ctx.load_query_side(p.out, r, out.data());
    double sum = 0.0;
    for (int x = 0; x < ctx.d; ++x) sum += static_cast<double>(dout[x]) * out[x];
    p.softmax_d.data[stats_offset(p.softmax_d, ctx.extent, r, head)] = static_cast<float>(sum);
  }
}

void dq_pass(const BwdProblem& p, int64_t seq, int64_t head, int64_t row0) {
  const HeadContext ctx(p, seq, head);
  const int d = ctx.d;
  const int rows = static_cast<int>(std::min<int64_t>(kBlockM, ctx.extent.s_q - row0));
  if (rows <= 0) return;
  std::vector<float> q(static_cast<size_t>(rows) * d), dout(q.size()), dq(q.size(), 0.f);
  std::vector<float> lse(rows), rowsum(rows);
  for (int r = 0; r < rows; ++r) {
    ctx.load_query_side(p.q, row0 + r, &q[static_cast<size_t>(r) * d]);
    ctx.load_query_side(p.dout, row0 + r, &dout[static_cast<size_t>(r) * d]);
    lse[r] = ctx.lse(row0 + r);
    rowsum[r] = ctx.rowsum(row0 + r);
  }
  int64_t lo, hi, last_lo, last_hi;
  ctx.rule.key_range(row0, lo, hi);
  ctx.rule.key_range(row0 + rows - 1, last_lo, last_hi);
  const int64_t key_end = std::max(hi, last_hi);
  std::vector<float> k(static_cast<size_t>(kBlockN) * d), v(k.size());
  for (int64_t j0 = lo; j0 < key_end; j0 += kBlockN) {
    const int n = static_cast<int>(std::min<int64_t>(kBlockN, key_end - j0));
    for (int c = 0; c < n; ++c) {
      ctx.load_key_side(p.k, j0 + c, &k[static_cast<size_t>(c) * d]);
      ctx.load_key_side(p.v, j0 + c, &v[static_cast<size_t>(c) * d]);
    }
    for (int r = 0; r < rows; ++r) {
      if (!std::isfinite(lse[r])) continue;  // the row saw no key: its gradient is zero
      int64_t rlo, rhi;
      ctx.rule.key_range(row0 + r, rlo, rhi);
      rlo = std::max(rlo, j0);
      rhi = std::min(rhi, j0 + n);
      const float* qr = &q[static_cast<size_t>(r) * d];
      const float* dor = &dout[static_cast<size_t>(r) * d];
      float* dqr = &dq[static_cast<size_t>(r) * d];
      for (int64_t j = rlo; j < rhi; ++j) {
        const float* kj = &k[static_cast<size_t>(j - j0) * d];
        float p_dropped;
        const float ds = ctx.grad_score(dot_product(qr, kj, d), dot_product(dor, &v[static_cast<size_t>(j - j0) * d], d),
                                        row0 + r, j, lse[r], rowsum[r], p_dropped);
        const float coef = ds * p.mods.softmax_scale;
        for (int x = 0; x < d; ++x) dqr[x] += coef * kj[x];
      }
    }
  }
  for (int r = 0; r < rows; ++r)
    store_row(&dq[static_cast<size_t>(r) * d], d,
              element_ptr(p.dq.data, p.dq.dtype, query_offset(p.dq, ctx.extent, row0 + r, head)), p.dq.dtype);
}

void dkdv_pass(const BwdProblem& p, int64_t seq, int64_t kv_head, int64_t key0) {
  const int group = p.h_q / p.h_k;
  const HeadContext first(p, seq, kv_head * group);
  const int d = first.d;
  const int keys = static_cast<int>(std::min<int64_t>(kBlockN, first.extent.s_k - key0));
  if (keys <= 0) return;
  std::vector<float> k(static_cast<size_t>(keys) * d), v(k.size()), dk(k.size(), 0.f), dv(k.size(), 0.f);
  for (int c = 0; c < keys; ++c) {
    first.load_key_side(p.k, key0 + c, &k[static_cast<size_t>(c) * d]);
    first.load_key_side(p.v, key0 + c, &v[static_cast<size_t>(c) * d]);
  }
  std::vector<float> q(d), dout(d);
  for (int g = 0; g < group; ++g) {
    const HeadContext ctx(p, seq, kv_head * group + g);
    int64_t row_lo, row_hi;
    ctx.rule.query_range(key0, key0 + keys, row_lo, row_hi);
    for (int64_t r = row_lo; r < row_hi; ++r) {
      const float lse_r = ctx.lse(r);
      if (!std::isfinite(lse_r)) continue;
      int64_t lo, hi;
      ctx.rule.key_range(r, lo, hi);
      lo = std::max<int64_t>(lo, key0);
      hi = std::min<int64_t>(hi, key0 + keys);
      if (lo >= hi) continue;
      ctx.load_query_side(p.q, r, q.data());
      ctx.load_query_side(p.dout, r, dout.data());
      const float d_r = ctx.rowsum(r);
      for (int64_t j = lo; j < hi; ++j) {
        const size_t c = static_cast<size_t>(j - key0) * d;
        float p_dropped;
        const float ds = ctx.grad_score(dot_product(q.data(), &k[c], d), dot_product(dout.data(), &v[c], d), r, j,
                                        lse_r, d_r, p_dropped);
        const float coef = ds * p.mods.softmax_scale;
        for (int x = 0; x < d; ++x) {
          dv[c + x] += p_dropped * dout[x];
          dk[c + x] += coef * q[x];
        }
      }
    }
  }
  for (int c = 0; c < keys; ++c) {
    store_row(&dk[static_cast<size_t>(c) * d], d,
              element_ptr(p.dk.data, p.dk.dtype, key_offset(p.seqs, p.dk, first.extent, seq, key0 + c, kv_head)),
              p.dk.dtype);
    store_row(&dv[static_cast<size_t>(c) * d], d,
              element_ptr(p.dv.data, p.dv.dtype, key_offset(p.seqs, p.dv, first.extent, seq, key0 + c, kv_head)),
              p.dv.dtype);
  }
}

}  // namespace

Status bwd(const BwdProblem& p) {
  const int64_t batch = p.seqs.batch;
  const int64_t q_tiles = (static_cast<int64_t>(p.seqs.max_seqlen_q) + kBlockM - 1) / kBlockM;
  const int64_t k_tiles = (static_cast<int64_t>(p.seqs.max_seqlen_k) + kBlockN - 1) / kBlockN;
  const int64_t q_items = q_tiles * p.h_q;
  const int64_t k_items = k_tiles * p.h_k;
  parallel_for(batch * q_items, [&](int64_t item) {
    rowsum_pass(p, item / q_items, (item % q_items) / q_tiles, (item % q_tiles) * kBlockM);
  });
  parallel_for(batch * q_items, [&](int64_t item) {
    dq_pass(p, item / q_items, (item % q_items) / q_tiles, (item % q_tiles) * kBlockM);
  });
  parallel_for(batch * k_items, [&](int64_t item) {
    dkdv_pass(p, item / k_items, (item % k_items) / k_tiles, (item % k_tiles) * kBlockN);
  });
  return Status::ok();
}

}  // namespace cpu
}  // namespace flashplus
