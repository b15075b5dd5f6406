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
};

}  // namespace kernels
}  // namespace flashplus
