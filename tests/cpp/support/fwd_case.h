// fwd_case.h — build, run and check one flashplus_fwd call.
//
// make_fwd_case turns an AttentionConfig into tensors (random inputs that are never zero,
// outputs poisoned with 0xFF bytes) and the argument struct; check_fwd runs the oracle on those
// arguments, calls the library, and compares out, softmax_lse and s_dmask. Tests that need an
// unusual layout edit the returned args (keeping their own tensors alive) before check_fwd.
#pragma once

#include "flashplus/flashplus.h"
#include "support/attention_config.h"
#include "support/host_tensor.h"

namespace fptest {

struct FwdCase {
  AttentionConfig config;
  HostTensor q, k, v, out, lse, s_dmask;
  HostTensor cu_seqlens_q, cu_seqlens_k, seqused_k, leftpad_k, block_table, alibi_slopes;
  flashplus_fwd_args args{};  // descriptors of the tensors above plus the config's scalars
};

FwdCase make_fwd_case(const AttentionConfig& config);

// Fills every logical element of a float tensor with NaN (the whole output must be written).
void poison_elements(const flashplus_tensor& tensor);

// Oracle first (it reads only inputs), then poison outputs, call, compare. Adds gtest failures.
void check_fwd(const flashplus_fwd_args& args);

// Pieces shared with the backward and KV-cache cases.
HostTensor random_alibi_slopes(Alibi mode, int64_t batch, int64_t h_q, Rng& rng);
std::vector<int32_t> prefix_sums(const std::vector<int32_t>& lengths);

}  // namespace fptest
