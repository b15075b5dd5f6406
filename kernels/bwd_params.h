// bwd_params.h — the flat, device-readable description of one backward launch.
//
// The backward recomputes the forward's scores, so it carries a whole FwdParams (q, k, v, out,
// lse, sequences, masks, logit modifiers, dropout) and adds the gradient tensors. Sequence and
// mask helpers (SeqlenInfo, LogitRule, WindowMask, key_block_range) are shared with the forward
// through that member, so forward and backward can never disagree about which keys a query sees.
#pragma once

#include "fwd_params.h"

namespace flashplus {
namespace kernels {

struct BwdParams {
  FwdParams fwd;            // q, k, v, out, lse (read), sequences, masks, dropout
  RowsAddr dout;            // like q
  RowsAddr dq;              // written, like q
  RowsAddr dk, dv;          // written, like k and v (dense or varlen, never paged)
  StatsAddr softmax_d;      // written by the pre-pass: rowsum(dout * out), like lse
  int num_m_blocks = 0;     // query tiles of the longest sequence
  int num_n_blocks = 0;     // key tiles of the longest sequence
  // Fused mode (deterministic == 0): the dK/dV kernel also adds each tile's dS K into this fp32
  // buffer with atomics and a post-pass converts it into dq; nullptr selects the two-kernel,
  // atomic-free mode. Layout in dq_accum.cuh; dq_accum_head_dim is the compiled head dim.
  float* dq_accum = nullptr;
  int dq_accum_head_dim = 0;
};

// Rows of dq_accum. The last query tile of a sequence adds up to block_m - 1 rows past its end
// (all zeros; block_m is 64 on sm80, up to 128 on sm90, tile_shape.h), so every sequence owns
// whole tiles of rows and those atomics need no bounds test: dense sequences get max_seqlen_q
// rounded up to kDqAccumPadRows rows each (no padding at all when it divides, as in FA2's
// buffer), varlen ones kDqAccumPadRows extra rows each (their lengths are not known on the host).
constexpr int kDqAccumPadRows = 128;
constexpr int64_t dq_accum_dense_rows(int max_seqlen_q) {
  return (static_cast<int64_t>(max_seqlen_q) + kDqAccumPadRows - 1) / kDqAccumPadRows * kDqAccumPadRows;
}
inline int64_t dq_accum_rows(int batch, int max_seqlen_q, int64_t q_rows_total, bool varlen) {
  return varlen ? q_rows_total + static_cast<int64_t>(batch) * kDqAccumPadRows
                : static_cast<int64_t>(batch) * dq_accum_dense_rows(max_seqlen_q);
}

}  // namespace kernels
}  // namespace flashplus
