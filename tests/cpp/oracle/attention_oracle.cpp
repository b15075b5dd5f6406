#include "oracle/attention_oracle.h"

#include <algorithm>

#include "oracle/head_attention.h"
#include "oracle/philox_reference.h"
#include "oracle/sequence_layout.h"
#include "support/tensor_access.h"

namespace oracle {

using fptest::RefArray;

namespace {

struct MaskArgs {
  float softmax_scale;
  float softcap;
  int32_t is_causal, window_left, window_right;
  const flashplus_tensor* alibi_slopes;
};

LogitRule logit_rule(const MaskArgs& m, int64_t batch, int64_t head) {
  LogitRule rule;
  rule.softmax_scale = m.softmax_scale;
  rule.softcap = m.softcap;
  rule.window_left = m.window_left;
  rule.window_right = m.is_causal ? 0 : m.window_right;
  if (m.alibi_slopes->data) {
    rule.has_alibi = true;
    const int64_t index[2] = {batch, head};
    rule.alibi_slope = m.alibi_slopes->ndim == 1 ? fptest::load_element(*m.alibi_slopes, index + 1)
                                                 : fptest::load_element(*m.alibi_slopes, index);
  }
  return rule;
}

HeadDropout head_dropout(double p, uint64_t seed, uint64_t offset, int64_t batch_head,
                         int64_t s_q, int64_t s_k) {
  HeadDropout dropout;
  dropout.p = p;
  if (p <= 0.0) return dropout;
  const DropoutMaskReference mask(seed, offset, p);
  dropout.keep.resize(s_q * s_k);
  for (int64_t i = 0; i < s_q; ++i)
    for (int64_t j = 0; j < s_k; ++j)
      dropout.keep[i * s_k + j] = mask.keep(static_cast<uint32_t>(batch_head),
                                            static_cast<uint32_t>(i), static_cast<uint32_t>(j));
  return dropout;
}

// LSE-shaped arrays: (b, h, s_q) dense, (h, total_q) varlen.
RefArray lse_shaped(const flashplus_tensor& q, bool varlen, int64_t batch, int64_t h_q) {
  if (varlen) return RefArray({h_q, q.sizes[0]});
  return RefArray({batch, h_q, q.sizes[1]});
}

double& lse_slot(RefArray& lse, bool varlen, int64_t batch, int64_t head, const RowAddress& row,
                 int64_t i) {
  return varlen ? lse.at({head, row.lead[0]}) : lse.at({batch, head, i});
}

}  // namespace

ForwardReference reference_forward(const flashplus_fwd_args& a, const Rounding& round) {
  const bool varlen = a.cu_seqlens_q.data != nullptr;
  const int nd = a.q.ndim;
  const int64_t h_q = a.q.sizes[nd - 2], h_k = a.k.sizes[a.k.ndim - 2];
  const int64_t group = h_q / h_k;
  const std::vector<SequenceRows> sequences = locate_sequences(
      a.q, a.k, a.cu_seqlens_q, a.cu_seqlens_k, a.seqused_k, a.leftpad_k, a.block_table);
  const int64_t batch = static_cast<int64_t>(sequences.size());

  int64_t max_s_q = 0, max_s_k = 0;
  if (a.s_dmask.data) {
    max_s_q = a.s_dmask.sizes[2];
    max_s_k = a.s_dmask.sizes[3];
  } else {
    for (const SequenceRows& seq : sequences) {
      max_s_q = std::max<int64_t>(max_s_q, seq.queries.size());
      max_s_k = std::max<int64_t>(max_s_k, seq.keys.size());
    }
  }

  ForwardReference ref;
  ref.out = RefArray(std::vector<int64_t>(a.q.sizes, a.q.sizes + nd));
  ref.lse = lse_shaped(a.q, varlen, batch, h_q);
  ref.probabilities = RefArray({batch, h_q, max_s_q, max_s_k});
  ref.kept = RefArray({batch, h_q, max_s_q, max_s_k}, 1.0);
  ref.visible = RefArray({batch, h_q, max_s_q, max_s_k});
  const MaskArgs mask{a.softmax_scale, a.softcap, a.is_causal, a.window_left, a.window_right,
                      &a.alibi_slopes};

  for (int64_t b = 0; b < batch; ++b) {
    const SequenceRows& seq = sequences[b];
    const int64_t s_q = seq.queries.size(), s_k = seq.keys.size();
    for (int64_t h = 0; h < h_q; ++h) {
      HeadInputs in;
      in.s_q = s_q;
      in.s_k = s_k;
      in.head_dim = a.q.sizes[nd - 1];
      in.q = gather_rows(a.q, seq.queries, h);
      in.k = gather_rows(a.k, seq.keys, h / group);
      in.v = gather_rows(a.v, seq.keys, h / group);
      const HeadDropout dropout =
          head_dropout(a.dropout_p, a.philox_seed, a.philox_offset, b * h_q + h, s_q, s_k);
      const HeadForward fw = head_forward(in, logit_rule(mask, b, h), dropout, round);

      scatter_rows(ref.out, seq.queries, h, fw.out, false);
      for (int64_t i = 0; i < s_q; ++i) {
        lse_slot(ref.lse, varlen, b, h, seq.queries[i], i) = fw.lse[i];
        for (int64_t j = 0; j < s_k && i < max_s_q && j < max_s_k; ++j) {
          ref.probabilities.at({b, h, i, j}) = fw.p[i * s_k + j];
          ref.visible.at({b, h, i, j}) = fw.visible[i * s_k + j];
          if (!dropout.keep.empty()) ref.kept.at({b, h, i, j}) = dropout.keep[i * s_k + j];
        }
      }
    }
  }
  return ref;
}

BackwardReference reference_backward(const flashplus_bwd_args& a, const Rounding& round) {
  const bool varlen = a.cu_seqlens_q.data != nullptr;
  const int nd = a.q.ndim;
  const int64_t h_q = a.q.sizes[nd - 2], h_k = a.k.sizes[nd - 2];
  const int64_t group = h_q / h_k;
  const flashplus_tensor none{};
  const std::vector<SequenceRows> sequences =
      locate_sequences(a.q, a.k, a.cu_seqlens_q, a.cu_seqlens_k, none, none, none);
  const int64_t batch = static_cast<int64_t>(sequences.size());

  BackwardReference ref;
  ref.dq = RefArray(std::vector<int64_t>(a.q.sizes, a.q.sizes + nd));
  ref.dk = RefArray(std::vector<int64_t>(a.k.sizes, a.k.sizes + nd));
  ref.dv = RefArray(std::vector<int64_t>(a.v.sizes, a.v.sizes + nd));
  ref.softmax_d = lse_shaped(a.q, varlen, batch, h_q);
  const MaskArgs mask{a.softmax_scale, a.softcap, a.is_causal, a.window_left, a.window_right,
                      &a.alibi_slopes};

  for (int64_t b = 0; b < batch; ++b) {
    const SequenceRows& seq = sequences[b];
    const int64_t s_q = seq.queries.size(), s_k = seq.keys.size();
    const int64_t d = a.q.sizes[nd - 1];
    for (int64_t h = 0; h < h_q; ++h) {
      HeadInputs in;
      in.s_q = s_q;
      in.s_k = s_k;
      in.head_dim = d;
      in.q = gather_rows(a.q, seq.queries, h);
      in.k = gather_rows(a.k, seq.keys, h / group);
      in.v = gather_rows(a.v, seq.keys, h / group);
      const std::vector<double> dout = gather_rows(a.dout, seq.queries, h);
      const std::vector<double> out_passed = gather_rows(a.out, seq.queries, h);
      const LogitRule rule = logit_rule(mask, b, h);
      const HeadDropout dropout =
          head_dropout(a.dropout_p, a.philox_seed, a.philox_offset, b * h_q + h, s_q, s_k);
      const HeadForward fw = head_forward(in, rule, dropout, round);

      std::vector<double> row_dot(s_q, 0.0);
      for (int64_t i = 0; i < s_q; ++i) {
        double own = 0.0, passed = 0.0;
        for (int64_t f = 0; f < d; ++f) {
          own += dout[i * d + f] * fw.out[i * d + f];
          passed += dout[i * d + f] * out_passed[i * d + f];
        }
        row_dot[i] = own;
        lse_slot(ref.softmax_d, varlen, b, h, seq.queries[i], i) = passed;
      }
      const HeadGradients g = head_backward(in, rule, dropout, fw, dout, row_dot, round);
      for (double m : g.dq_magnitude) ref.dq_term_scale = std::max(ref.dq_term_scale, m);
      // A GQA group sums its heads' dk: the group's terms add up, so bound by the group size.
      for (double m : g.dk_magnitude) ref.dk_term_scale = std::max(ref.dk_term_scale, group * m);
      scatter_rows(ref.dq, seq.queries, h, g.dq, false);
      scatter_rows(ref.dk, seq.keys, h / group, g.dk, true);
      scatter_rows(ref.dv, seq.keys, h / group, g.dv, true);
    }
  }
  // A GQA group's dk/dv are sums of per-head gradients, each already rounded: round the sum too.
  for (double& value : ref.dk.values) value = round(value);
  for (double& value : ref.dv.values) value = round(value);
  return ref;
}

}  // namespace oracle
