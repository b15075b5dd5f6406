// Non-contiguous tensors: every stride but the last is honoured. q / k / v as slices of a packed
// qkv buffer, permuted (b, h, s, d) storage, padded rows, zero (broadcast) and negative strides,
// strided LSE; outputs written only inside their view. Same values, so the oracle is unchanged.
#include <gtest/gtest.h>

#include "support/bwd_case.h"
#include "support/fwd_case.h"
#include "support/kvcache_case.h"

namespace {

using fptest::AttentionConfig;
using fptest::HostTensor;

// `view` (some layout) takes the values of `source`; returns view for chaining.
HostTensor with_values_of(HostTensor view, const HostTensor& source) {
  view.assign(source.values());
  return view;
}

// (b, s, h_q + 2 h_k, d) packed heads, q / k / v as head slices: the layout of a fused projection.
struct PackedQkv {
  HostTensor packed, q, k, v;
};

PackedQkv pack_heads(const HostTensor& q, const HostTensor& k, const HostTensor& v) {
  const int64_t b = q.size(0), s = q.size(1), h_q = q.size(2), h_k = k.size(2), d = q.size(3);
  PackedQkv p;
  p.packed = HostTensor::contiguous(q.dtype(), {b, s, h_q + 2 * h_k, d});
  p.q = with_values_of(p.packed.narrow(2, 0, h_q), q);
  p.k = with_values_of(p.packed.narrow(2, h_q, h_k), k);
  p.v = with_values_of(p.packed.narrow(2, h_q + h_k, h_k), v);
  return p;
}

TEST(Strides, ForwardWithQkvSlicesOfOnePackedTensor) {
  for (int64_t h_k : {4, 2}) {
    AttentionConfig cfg;
    cfg.h_q = 4;
    cfg.h_k = h_k;
    cfg.causal = true;
    fptest::FwdCase c = fptest::make_fwd_case(cfg);
    const PackedQkv p = pack_heads(c.q, c.k, c.v);
    c.args.q = p.q.abi();
    c.args.k = p.k.abi();
    c.args.v = p.v.abi();
    SCOPED_TRACE("h_k " + std::to_string(h_k));
    fptest::check_fwd(c.args);
  }
}

TEST(Strides, ForwardWithQkvStackedOnAThirdAxis) {
  // (b, s, 3, h, d): q = [:, :, 0], k = [:, :, 1], v = [:, :, 2].
  AttentionConfig cfg;
  cfg.dtype = FLASHPLUS_DTYPE_BFLOAT16;
  fptest::FwdCase c = fptest::make_fwd_case(cfg);
  HostTensor qkv = HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.s_q, 3, cfg.h_q, cfg.head_dim});
  const HostTensor q = with_values_of(qkv.select(2, 0), c.q);
  const HostTensor k = with_values_of(qkv.select(2, 1), c.k);
  const HostTensor v = with_values_of(qkv.select(2, 2), c.v);
  c.args.q = q.abi();
  c.args.k = k.abi();
  c.args.v = v.abi();
  fptest::check_fwd(c.args);
}

TEST(Strides, ForwardWithPermutedAndPaddedLayouts) {
  AttentionConfig cfg;
  cfg.s_q = 9;
  cfg.s_k = 14;
  cfg.h_k = 2;
  fptest::FwdCase c = fptest::make_fwd_case(cfg);
  // q stored (b, h, s, d); k rows padded to 64 features; v heads padded.
  const HostTensor q = with_values_of(
      HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.h_q, cfg.s_q, cfg.head_dim}).permute({0, 2, 1, 3}),
      c.q);
  const HostTensor k = with_values_of(
      HostTensor::strided(cfg.dtype, {cfg.batch, cfg.s_k, cfg.h_k, cfg.head_dim},
                          {cfg.s_k * cfg.h_k * 64 + 5, cfg.h_k * 64, 64, 1}),
      c.k);
  const HostTensor v = with_values_of(
      HostTensor::strided(cfg.dtype, {cfg.batch, cfg.s_k, cfg.h_k, cfg.head_dim},
                          {cfg.s_k * 100, 100, 48, 1}),
      c.v);
  HostTensor out = HostTensor::strided(cfg.dtype, {cfg.batch, cfg.s_q, cfg.h_q, cfg.head_dim},
                                       {cfg.s_q * cfg.h_q * 48 + 7, cfg.h_q * 48, 48, 1});
  HostTensor lse = HostTensor::strided(FLASHPLUS_DTYPE_FLOAT32, {cfg.batch, cfg.h_q, cfg.s_q},
                                       {cfg.h_q * 16, 16, 1});
  out.poison();
  lse.poison();
  c.args.q = q.abi();
  c.args.k = k.abi();
  c.args.v = v.abi();
  c.args.out = out.abi();
  c.args.softmax_lse = lse.abi();
  fptest::check_fwd(c.args);
  EXPECT_EQ(out.elements_written_outside_view(), 0) << "out's padding was written";
  EXPECT_EQ(lse.elements_written_outside_view(), 0) << "softmax_lse's padding was written";
}

TEST(Strides, ForwardWithZeroAndNegativeStrides) {
  AttentionConfig cfg;
  cfg.batch = 3;
  cfg.s_q = 6;
  cfg.s_k = 10;
  cfg.causal = true;
  cfg.dtype = FLASHPLUS_DTYPE_FLOAT32;
  fptest::FwdCase c = fptest::make_fwd_case(cfg);
  // k: every batch entry reads the same keys (batch stride 0). v: rows stored in reverse order.
  // q: heads stored in reverse order.
  HostTensor k = HostTensor::strided(cfg.dtype, {cfg.batch, cfg.s_k, cfg.h_k, cfg.head_dim},
                                     {0, cfg.h_k * cfg.head_dim, cfg.head_dim, 1});
  fptest::Rng rng(4);
  k.fill_normal(rng);
  HostTensor v = with_values_of(
      HostTensor::strided(cfg.dtype, {cfg.batch, cfg.s_k, cfg.h_k, cfg.head_dim},
                          {cfg.s_k * cfg.h_k * cfg.head_dim, -cfg.h_k * cfg.head_dim, cfg.head_dim, 1}),
      c.v);
  HostTensor q = with_values_of(
      HostTensor::strided(cfg.dtype, {cfg.batch, cfg.s_q, cfg.h_q, cfg.head_dim},
                          {cfg.s_q * cfg.h_q * cfg.head_dim, cfg.h_q * cfg.head_dim, -cfg.head_dim, 1}),
      c.q);
  c.args.q = q.abi();
  c.args.k = k.abi();
  c.args.v = v.abi();
  fptest::check_fwd(c.args);
}

TEST(Strides, VarlenForwardWithPaddedRows) {
  AttentionConfig cfg;
  cfg.seqlens_q = {4, 0, 9};
  cfg.seqlens_k = {6, 3, 9};
  cfg.h_k = 2;
  fptest::FwdCase c = fptest::make_fwd_case(cfg);
  auto padded_rows = [&](const HostTensor& t) {
    return with_values_of(
        HostTensor::strided(cfg.dtype, t.shape(), {t.size(1) * 64 + 8, 64, 1}), t);
  };
  const HostTensor q = padded_rows(c.q), k = padded_rows(c.k), v = padded_rows(c.v);
  HostTensor lse = HostTensor::strided(FLASHPLUS_DTYPE_FLOAT32, c.lse.shape(), {40, 1});
  lse.poison();
  c.args.q = q.abi();
  c.args.k = k.abi();
  c.args.v = v.abi();
  c.args.softmax_lse = lse.abi();
  fptest::check_fwd(c.args);
  EXPECT_EQ(lse.elements_written_outside_view(), 0);
}

TEST(Strides, BackwardWithPackedInputsAndGradients) {
  AttentionConfig cfg;
  cfg.h_q = 6;
  cfg.h_k = 2;
  cfg.s_q = 11;
  cfg.s_k = 11;
  cfg.causal = true;
  fptest::BwdCase c = fptest::make_bwd_case(cfg);
  const PackedQkv inputs = pack_heads(c.q, c.k, c.v);
  // Gradients into one packed (b, s, h_q + 2 h_k, d) buffer; its every byte poisoned first.
  HostTensor dqkv = HostTensor::contiguous(cfg.dtype, inputs.packed.shape());
  dqkv.poison();
  const HostTensor dq = dqkv.narrow(2, 0, cfg.h_q);
  const HostTensor dk = dqkv.narrow(2, cfg.h_q, cfg.h_k);
  const HostTensor dv = dqkv.narrow(2, cfg.h_q + cfg.h_k, cfg.h_k);
  // dout permuted (b, h, s, d) storage.
  const HostTensor dout = with_values_of(
      HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.h_q, cfg.s_q, cfg.head_dim}).permute({0, 2, 1, 3}),
      c.dout);
  c.args.q = inputs.q.abi();
  c.args.k = inputs.k.abi();
  c.args.v = inputs.v.abi();
  c.args.dq = dq.abi();
  c.args.dk = dk.abi();
  c.args.dv = dv.abi();
  c.args.dout = dout.abi();
  fptest::check_bwd(c.args);
}

TEST(Strides, BackwardGradientsWithPaddedStrides) {
  AttentionConfig cfg;
  cfg.seqlens_q = {7, 3};
  cfg.seqlens_k = {5, 8};
  cfg.dtype = FLASHPLUS_DTYPE_FLOAT32;
  fptest::BwdCase c = fptest::make_bwd_case(cfg);
  auto padded = [&](const HostTensor& like) {
    HostTensor t = HostTensor::strided(like.dtype(), like.shape(), {like.size(1) * 56 + 3, 56, 1});
    t.poison();
    return t;
  };
  HostTensor dq = padded(c.q), dk = padded(c.k), dv = padded(c.v);
  c.args.dq = dq.abi();
  c.args.dk = dk.abi();
  c.args.dv = dv.abi();
  fptest::check_bwd(c.args);
  EXPECT_EQ(dq.elements_written_outside_view(), 0);
  EXPECT_EQ(dk.elements_written_outside_view(), 0);
  EXPECT_EQ(dv.elements_written_outside_view(), 0);
}

TEST(Strides, KvcacheWithInterleavedKvCacheAndStridedQ) {
  // k_cache / v_cache as the two halves of one (b, capacity, 2, h_k, d) buffer.
  fptest::KvcacheConfig cfg;
  cfg.cache_seqlens = {4, 9};
  cfg.s_q = 2;
  cfg.s_new = 2;
  cfg.causal = true;
  cfg.rotary_dim = 8;
  fptest::KvcacheCase c = fptest::make_kvcache_case(cfg);
  HostTensor kv = HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.capacity, 2, cfg.h_k, cfg.head_dim});
  const HostTensor k_cache = with_values_of(kv.select(2, 0), c.k_cache);
  const HostTensor v_cache = with_values_of(kv.select(2, 1), c.v_cache);
  const HostTensor q = with_values_of(
      HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.h_q, cfg.s_q, cfg.head_dim}).permute({0, 2, 1, 3}),
      c.q);
  c.args.k_cache = k_cache.abi();
  c.args.v_cache = v_cache.abi();
  c.args.q = q.abi();
  fptest::check_kvcache(c.args);
}

}  // namespace
