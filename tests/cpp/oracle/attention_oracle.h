// attention_oracle.h — naive references for flashplus_fwd and flashplus_bwd.
//
// They read the very argument structs handed to the library and interpret them from the header's
// comments alone (layouts, GQA, masks, ALiBi, softcap, dropout), materialising the full score
// matrix of every (sequence, head). Call them before the library writes anything they read.
#pragma once

#include "flashplus/flashplus.h"
#include "oracle/rounding.h"
#include "support/ref_array.h"

namespace oracle {

struct ForwardReference {
  fptest::RefArray out;            // q's shape
  fptest::RefArray lse;            // (b, h_q, s_q) or (h_q, total_q)
  // (b, h_q, max_s_q, max_s_k), indexed within each sequence (keys counted after leftpad);
  // shaped like args.s_dmask when present.
  fptest::RefArray probabilities;  // normalised P, 0 where not visible or outside the sequence
  fptest::RefArray kept;           // 1 where dropout keeps the entry (all 1 without dropout)
  fptest::RefArray visible;        // 1 where key j is visible to query i
};

ForwardReference reference_forward(const flashplus_fwd_args& args, const Rounding& round);

struct BackwardReference {
  fptest::RefArray dq, dk, dv;
  fptest::RefArray softmax_d;  // rowsum(dout * out) with the out tensor passed in args
  // Largest |term| summed into dq / dk (see HeadGradients): the scale their rounding works at.
  double dq_term_scale = 0.0;
  double dk_term_scale = 0.0;
};

// Gradients of the oracle's own forward of (q, k, v); args.out and args.softmax_lse are used for
// softmax_d only.
BackwardReference reference_backward(const flashplus_bwd_args& args, const Rounding& round);

}  // namespace oracle
