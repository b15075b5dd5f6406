// bwd_case.h — build, run and check one flashplus_bwd call.
//
// out and softmax_lse come from the fp64 oracle's forward (stored at the call's precision), so a
// backward test never depends on the library's forward. Gradients and softmax_d are poisoned.
#pragma once

#include "flashplus/flashplus.h"
#include "support/attention_config.h"
#include "support/host_tensor.h"

namespace fptest {

struct BwdCase {
  AttentionConfig config;
  HostTensor q, k, v, out, lse, dout, dq, dk, dv, softmax_d;
  HostTensor cu_seqlens_q, cu_seqlens_k, alibi_slopes;
  flashplus_bwd_args args{};
};

BwdCase make_bwd_case(const AttentionConfig& config);

// Oracle first, then poison dq/dk/dv/softmax_d, call, compare. Adds gtest failures.
void check_bwd(const flashplus_bwd_args& args);

// The forward arguments equivalent to a backward call (for computing out / lse with the oracle).
flashplus_fwd_args forward_args_of(const flashplus_bwd_args& args, const flashplus_tensor& out,
                                   const flashplus_tensor& lse);

}  // namespace fptest
