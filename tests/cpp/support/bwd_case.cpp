#include "support/bwd_case.h"

#include <gtest/gtest.h>

#include "oracle/attention_oracle.h"
#include "support/compare.h"
#include "support/fwd_case.h"
#include "support/tensor_access.h"

namespace fptest {

flashplus_fwd_args forward_args_of(const flashplus_bwd_args& b, const flashplus_tensor& out,
                                   const flashplus_tensor& lse) {
  flashplus_fwd_args f;
  flashplus_fwd_args_init(&f);
  f.q = b.q;
  f.k = b.k;
  f.v = b.v;
  f.out = out;
  f.softmax_lse = lse;
  f.cu_seqlens_q = b.cu_seqlens_q;
  f.cu_seqlens_k = b.cu_seqlens_k;
  f.alibi_slopes = b.alibi_slopes;
  f.max_seqlen_q = b.max_seqlen_q;
  f.max_seqlen_k = b.max_seqlen_k;
  f.softmax_scale = b.softmax_scale;
  f.softcap = b.softcap;
  f.is_causal = b.is_causal;
  f.window_left = b.window_left;
  f.window_right = b.window_right;
  f.dropout_p = b.dropout_p;
  f.philox_seed = b.philox_seed;
  f.philox_offset = b.philox_offset;
  return f;
}

BwdCase make_bwd_case(const AttentionConfig& cfg) {
  // The forward case builds q, k, v, cu_seqlens and slopes exactly as a forward test would.
  FwdCase fwd = make_fwd_case(cfg);
  BwdCase c;
  c.config = cfg;
  c.q = fwd.q;
  c.k = fwd.k;
  c.v = fwd.v;
  c.out = fwd.out;
  c.lse = fwd.lse;
  c.cu_seqlens_q = fwd.cu_seqlens_q;
  c.cu_seqlens_k = fwd.cu_seqlens_k;
  c.alibi_slopes = fwd.alibi_slopes;

  Rng rng(cfg.data_seed ^ 0xD0D0D0D0ULL);
  c.dout = HostTensor::contiguous(cfg.dtype, c.q.shape());
  c.dout.fill_normal(rng);
  c.dq = HostTensor::contiguous(cfg.dtype, c.q.shape());
  c.dk = HostTensor::contiguous(cfg.dtype, c.k.shape());
  c.dv = HostTensor::contiguous(cfg.dtype, c.v.shape());
  c.softmax_d = HostTensor::contiguous(FLASHPLUS_DTYPE_FLOAT32, c.lse.shape());
  for (HostTensor* t : {&c.dq, &c.dk, &c.dv, &c.softmax_d}) t->poison();

  flashplus_bwd_args& a = c.args;
  flashplus_bwd_args_init(&a);
  a.dout = c.dout.abi();
  a.q = c.q.abi();
  a.k = c.k.abi();
  a.v = c.v.abi();
  a.out = c.out.abi();
  a.softmax_lse = c.lse.abi();
  a.dq = c.dq.abi();
  a.dk = c.dk.abi();
  a.dv = c.dv.abi();
  a.softmax_d = c.softmax_d.abi();
  a.cu_seqlens_q = c.cu_seqlens_q.abi();
  a.cu_seqlens_k = c.cu_seqlens_k.abi();
  a.alibi_slopes = c.alibi_slopes.abi();
  a.max_seqlen_q = fwd.args.max_seqlen_q;
  a.max_seqlen_k = fwd.args.max_seqlen_k;
  a.softmax_scale = fwd.args.softmax_scale;
  a.softcap = fwd.args.softcap;
  a.is_causal = fwd.args.is_causal;
  a.window_left = fwd.args.window_left;
  a.window_right = fwd.args.window_right;
  a.dropout_p = fwd.args.dropout_p;
  a.philox_seed = fwd.args.philox_seed;
  a.philox_offset = fwd.args.philox_offset;
  a.deterministic = cfg.deterministic;

  // out / lse: the exact forward, stored at the call's precision.
  const oracle::ForwardReference forward =
      oracle::reference_forward(forward_args_of(a, c.out.abi(), c.lse.abi()),
                                oracle::Rounding::exact());
  c.out.assign(forward.out);
  c.lse.assign(forward.lse);
  return c;
}

void check_bwd(const flashplus_bwd_args& args) {
  const int32_t dtype = args.q.dtype;
  const oracle::BackwardReference exact =
      oracle::reference_backward(args, oracle::Rounding::exact());
  oracle::BackwardReference low;
  const bool has_low = dtype != FLASHPLUS_DTYPE_FLOAT32;
  if (has_low) low = oracle::reference_backward(args, oracle::Rounding::like(dtype));

  for (const flashplus_tensor* t : {&args.dq, &args.dk, &args.dv, &args.softmax_d})
    poison_elements(*t);
  const flashplus_status status = flashplus_bwd(&args);
  ASSERT_EQ(status, FLASHPLUS_STATUS_OK) << flashplus_status_name(status) << ": "
                                         << flashplus_last_error();
  EXPECT_STREQ(flashplus_last_error(), "");

  // Typical tensors have terms 3-5x their largest entry; a tensor that cancels far more than
  // that (every row sees one key, so dS = 0 exactly) is measured against a tenth of its terms.
  const double dq_floor = exact.dq_term_scale / 10.0, dk_floor = exact.dk_term_scale / 10.0;
  EXPECT_TRUE(matches_oracle("dq", read_tensor(args.dq), exact.dq, has_low ? &low.dq : nullptr,
                             dtype, dq_floor));
  EXPECT_TRUE(matches_oracle("dk", read_tensor(args.dk), exact.dk, has_low ? &low.dk : nullptr,
                             dtype, dk_floor));
  EXPECT_TRUE(matches_oracle("dv", read_tensor(args.dv), exact.dv, has_low ? &low.dv : nullptr,
                             dtype));
  // softmax_d is a plain fp32 row sum of the given tensors: fp32 accuracy whatever the inputs.
  EXPECT_TRUE(matches_oracle("softmax_d", read_tensor(args.softmax_d), exact.softmax_d, nullptr,
                             FLASHPLUS_DTYPE_FLOAT32));
}

}  // namespace fptest
