#include "support/fwd_case.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "oracle/attention_oracle.h"
#include "support/compare.h"
#include "support/tensor_access.h"

namespace fptest {

std::vector<int32_t> prefix_sums(const std::vector<int32_t>& lengths) {
  std::vector<int32_t> sums(lengths.size() + 1, 0);
  for (size_t i = 0; i < lengths.size(); ++i) sums[i + 1] = sums[i] + lengths[i];
  return sums;
}

HostTensor random_alibi_slopes(Alibi mode, int64_t batch, int64_t h_q, Rng& rng) {
  if (mode == Alibi::kNone) return {};
  HostTensor slopes = mode == Alibi::kPerHead
                          ? HostTensor::contiguous(FLASHPLUS_DTYPE_FLOAT32, {h_q})
                          : HostTensor::contiguous(FLASHPLUS_DTYPE_FLOAT32, {batch, h_q});
  slopes.fill_uniform(rng, 0.05, 0.6);
  return slopes;
}

void poison_elements(const flashplus_tensor& tensor) {
  if (!tensor.data) return;
  std::vector<int64_t> sizes(tensor.sizes, tensor.sizes + tensor.ndim);
  for_each_index(sizes, [&](const int64_t* index) {
    store_element(tensor, index, std::numeric_limits<double>::quiet_NaN());
  });
}

namespace {

int32_t max_of(const std::vector<int32_t>& values) {
  return values.empty() ? 0 : *std::max_element(values.begin(), values.end());
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Paged K/V: each sequence gets `blocks_per_seq` distinct pages from a shuffled pool with spare
// pages, so neighbouring logical pages are never neighbours in memory.
void build_pages(FwdCase& c, int64_t blocks_per_seq, Rng& rng) {
  const AttentionConfig& cfg = c.config;
  const int64_t sequences = cfg.sequences();
  const int64_t num_blocks = sequences * blocks_per_seq + 3;
  std::vector<int32_t> pool(num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<int32_t> table(sequences * blocks_per_seq);
  for (size_t n = 0; n < table.size(); ++n) table[n] = pool[n];
  c.block_table = HostTensor::int32_2d(sequences, blocks_per_seq, table);
  c.k = HostTensor::contiguous(cfg.dtype, {num_blocks, cfg.page_size, cfg.h_k, cfg.head_dim});
  c.v = HostTensor::contiguous(cfg.dtype, {num_blocks, cfg.page_size, cfg.h_k, cfg.head_dim});
}

}  // namespace

FwdCase make_fwd_case(const AttentionConfig& cfg) {
  FwdCase c;
  c.config = cfg;
  Rng rng(cfg.data_seed);
  const int64_t sequences = cfg.sequences();
  int64_t max_s_q = cfg.s_q, max_s_k = cfg.s_k;

  if (cfg.varlen()) {
    const std::vector<int32_t> cu_q = prefix_sums(cfg.seqlens_q);
    const std::vector<int32_t> cu_k = prefix_sums(cfg.seqlens_k);
    c.cu_seqlens_q = HostTensor::int32(cu_q);
    c.cu_seqlens_k = HostTensor::int32(cu_k);
    max_s_q = max_of(cfg.seqlens_q);
    max_s_k = max_of(cfg.seqlens_k);
    c.q = HostTensor::contiguous(cfg.dtype, {cu_q.back(), cfg.h_q, cfg.head_dim});
    if (cfg.page_size > 0) {
      build_pages(c, std::max<int64_t>(1, ceil_div(max_s_k, cfg.page_size)), rng);
    } else {
      c.k = HostTensor::contiguous(cfg.dtype, {cu_k.back(), cfg.h_k, cfg.head_dim});
      c.v = HostTensor::contiguous(cfg.dtype, {cu_k.back(), cfg.h_k, cfg.head_dim});
    }
    c.out = HostTensor::contiguous(cfg.dtype, {cu_q.back(), cfg.h_q, cfg.head_dim});
    c.lse = HostTensor::contiguous(FLASHPLUS_DTYPE_FLOAT32, {cfg.h_q, cu_q.back()});
  } else {
    c.q = HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.s_q, cfg.h_q, cfg.head_dim});
    if (cfg.page_size > 0) {
      // Dense paged: every sequence's capacity is its whole page list.
      const int64_t blocks_per_seq = ceil_div(cfg.s_k, cfg.page_size);
      build_pages(c, blocks_per_seq, rng);
      max_s_k = blocks_per_seq * cfg.page_size;
    } else {
      c.k = HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.s_k, cfg.h_k, cfg.head_dim});
      c.v = HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.s_k, cfg.h_k, cfg.head_dim});
    }
    c.out = HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.s_q, cfg.h_q, cfg.head_dim});
    c.lse = HostTensor::contiguous(FLASHPLUS_DTYPE_FLOAT32, {cfg.batch, cfg.h_q, cfg.s_q});
  }
  c.q.fill_normal(rng);
  c.k.fill_normal(rng);
  c.v.fill_normal(rng);
  if (!cfg.seqused_k.empty()) c.seqused_k = HostTensor::int32(cfg.seqused_k);
  if (!cfg.leftpad_k.empty()) c.leftpad_k = HostTensor::int32(cfg.leftpad_k);
  c.alibi_slopes = random_alibi_slopes(cfg.alibi, sequences, cfg.h_q, rng);
  if (cfg.with_s_dmask)
    c.s_dmask = HostTensor::contiguous(cfg.s_dmask_dtype, {sequences, cfg.h_q, max_s_q, max_s_k});
  c.out.poison();
  c.lse.poison();
  if (c.s_dmask.present()) c.s_dmask.poison();

  flashplus_fwd_args& a = c.args;
  flashplus_fwd_args_init(&a);
  a.q = c.q.abi();
  a.k = c.k.abi();
  a.v = c.v.abi();
  a.out = c.out.abi();
  a.softmax_lse = c.lse.abi();
  a.s_dmask = c.s_dmask.abi();
  a.cu_seqlens_q = c.cu_seqlens_q.abi();
  a.cu_seqlens_k = c.cu_seqlens_k.abi();
  a.seqused_k = c.seqused_k.abi();
  a.leftpad_k = c.leftpad_k.abi();
  a.block_table = c.block_table.abi();
  a.alibi_slopes = c.alibi_slopes.abi();
  if (cfg.varlen()) {
    a.max_seqlen_q = static_cast<int32_t>(max_s_q);
    a.max_seqlen_k = static_cast<int32_t>(max_s_k);
  }
  a.softmax_scale = cfg.scale();
  a.softcap = cfg.softcap;
  a.is_causal = cfg.causal;
  a.window_left = cfg.window_left;
  a.window_right = cfg.window_right;
  a.dropout_p = cfg.dropout_p;
  a.philox_seed = cfg.philox_seed;
  a.philox_offset = cfg.philox_offset;
  a.num_splits = cfg.num_splits;
  return c;
}

namespace {

// s_dmask holds P (normalised, before the 1 / (1 - p) scaling), negated where dropout dropped the
// entry, and 0 wherever the key is not visible or the entry lies outside the sequence.
void check_s_dmask(const flashplus_tensor& s_dmask, const oracle::ForwardReference& exact,
                   const oracle::ForwardReference* same_precision, int32_t input_dtype) {
  const RefArray kernel = read_tensor(s_dmask);
  RefArray magnitude = kernel;
  for (double& value : magnitude.values) value = std::fabs(value);
  EXPECT_TRUE(matches_oracle("|s_dmask|", magnitude, exact.probabilities,
                             same_precision ? &same_precision->probabilities : nullptr,
                             input_dtype));

  int64_t wrong_sign = 0, first_wrong = -1, stray = 0, first_stray = -1;
  for (int64_t n = 0; n < kernel.numel(); ++n) {
    if (exact.visible.values[n] == 0.0) {
      if (kernel.values[n] != 0.0 && stray++ == 0) first_stray = n;
      continue;
    }
    const bool dropped = exact.kept.values[n] == 0.0;
    if (std::signbit(kernel.values[n]) != dropped && wrong_sign++ == 0) first_wrong = n;
  }
  if (wrong_sign > 0) {
    ADD_FAILURE() << "s_dmask sign disagrees with the oracle's Philox keep-mask at " << wrong_sign
                  << " visible entries; first at " << format_index(kernel.sizes, first_wrong)
                  << ": value " << kernel.values[first_wrong] << ", oracle "
                  << (exact.kept.values[first_wrong] != 0.0 ? "keeps" : "drops") << " it";
  }
  EXPECT_EQ(stray, 0) << "s_dmask is non-zero at " << stray
                      << " masked / out-of-sequence entries; first "
                      << (first_stray >= 0 ? format_index(kernel.sizes, first_stray) : "");
}

}  // namespace

void check_fwd(const flashplus_fwd_args& args) {
  const int32_t dtype = args.q.dtype;
  const oracle::ForwardReference exact = oracle::reference_forward(args, oracle::Rounding::exact());
  oracle::ForwardReference low;
  const bool has_low = dtype != FLASHPLUS_DTYPE_FLOAT32;
  if (has_low) low = oracle::reference_forward(args, oracle::Rounding::like(dtype));

  poison_elements(args.out);
  poison_elements(args.softmax_lse);
  poison_elements(args.s_dmask);
  const flashplus_status status = flashplus_fwd(&args);
  ASSERT_EQ(status, FLASHPLUS_STATUS_OK) << flashplus_status_name(status) << ": "
                                         << flashplus_last_error();
  EXPECT_STREQ(flashplus_last_error(), "");

  EXPECT_TRUE(matches_oracle("out", read_tensor(args.out), exact.out, has_low ? &low.out : nullptr,
                             dtype));
  EXPECT_TRUE(matches_oracle("softmax_lse", read_tensor(args.softmax_lse), exact.lse,
                             has_low ? &low.lse : nullptr, dtype));
  if (args.s_dmask.data) check_s_dmask(args.s_dmask, exact, has_low ? &low : nullptr, dtype);
}

}  // namespace fptest
