#include "support/kvcache_case.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "oracle/kvcache_oracle.h"
#include "support/compare.h"
#include "support/fwd_case.h"
#include "support/tensor_access.h"

namespace fptest {

std::string KvcacheConfig::name() const {
  if (!label.empty()) return label;
  std::ostringstream text;
  text << dtype_name(dtype) << "_b" << batch << "_sq" << s_q << "_h" << h_q << "x" << h_k << "_d"
       << head_dim << "_cap" << capacity;
  if (s_new) text << "_new" << s_new;
  if (cache_seqlens.empty()) text << "_full";
  if (!cache_batch_idx.empty()) text << "_batchidx";
  if (!cache_leftpad.empty()) text << "_leftpad";
  if (page_size) text << "_page" << page_size;
  if (rotary_dim) text << "_rot" << rotary_dim << (rotary_interleaved ? "i" : "n");
  if (causal) text << "_causal";
  if (window_left >= 0 || window_right >= 0)
    text << "_win" << (window_left < 0 ? "inf" : std::to_string(window_left)) << "_"
         << (window_right < 0 ? "inf" : std::to_string(window_right));
  if (softcap > 0.f) text << "_softcap";
  if (alibi == Alibi::kPerHead) text << "_alibi";
  if (alibi == Alibi::kPerBatchHead) text << "_alibibh";
  if (num_splits) text << "_splits" << num_splits;
  if (!with_lse) text << "_nolse";
  return text.str();
}

KvcacheCase make_kvcache_case(const KvcacheConfig& cfg) {
  KvcacheCase c;
  c.config = cfg;
  Rng rng(cfg.data_seed);
  const int64_t d = cfg.head_dim;

  c.q = HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.s_q, cfg.h_q, d});
  c.q.fill_normal(rng);
  int64_t capacity = cfg.capacity;
  if (cfg.page_size > 0) {
    const int64_t blocks_per_seq = (cfg.capacity + cfg.page_size - 1) / cfg.page_size;
    capacity = blocks_per_seq * cfg.page_size;
    const int64_t num_blocks = cfg.batch * blocks_per_seq + 2;
    std::vector<int32_t> pool(num_blocks);
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng);
    pool.resize(cfg.batch * blocks_per_seq);
    c.block_table = HostTensor::int32_2d(cfg.batch, blocks_per_seq, pool);
    c.k_cache = HostTensor::contiguous(cfg.dtype, {num_blocks, cfg.page_size, cfg.h_k, d});
    c.v_cache = HostTensor::contiguous(cfg.dtype, {num_blocks, cfg.page_size, cfg.h_k, d});
  } else {
    const int64_t entries = cfg.cache_batch ? cfg.cache_batch : cfg.batch;
    c.k_cache = HostTensor::contiguous(cfg.dtype, {entries, capacity, cfg.h_k, d});
    c.v_cache = HostTensor::contiguous(cfg.dtype, {entries, capacity, cfg.h_k, d});
  }
  // The whole cache is random (never zero): rows past cache_seqlens must simply be ignored.
  c.k_cache.fill_normal(rng);
  c.v_cache.fill_normal(rng);
  if (cfg.s_new > 0) {
    c.k_new = HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.s_new, cfg.h_k, d});
    c.v_new = HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.s_new, cfg.h_k, d});
    c.k_new.fill_normal(rng);
    c.v_new.fill_normal(rng);
  }
  if (cfg.rotary_dim > 0) {
    // Real rotary tables: cos / sin of position * inverse frequency. Query rows may sit at
    // positions up to c + s_q - 1, so the table covers capacity + s_q positions.
    const int64_t half = cfg.rotary_dim / 2;
    const int64_t positions = capacity + cfg.s_q;
    c.rotary_cos = HostTensor::contiguous(cfg.dtype, {positions, half});
    c.rotary_sin = HostTensor::contiguous(cfg.dtype, {positions, half});
    for (int64_t pos = 0; pos < positions; ++pos)
      for (int64_t t = 0; t < half; ++t) {
        const double angle = pos * std::pow(10000.0, -2.0 * t / cfg.rotary_dim) + 0.1;
        c.rotary_cos.set({pos, t}, std::cos(angle));
        c.rotary_sin.set({pos, t}, std::sin(angle));
      }
  }
  if (!cfg.cache_seqlens.empty()) c.cache_seqlens = HostTensor::int32(cfg.cache_seqlens);
  if (!cfg.cache_batch_idx.empty()) c.cache_batch_idx = HostTensor::int32(cfg.cache_batch_idx);
  if (!cfg.cache_leftpad.empty()) c.cache_leftpad = HostTensor::int32(cfg.cache_leftpad);
  c.alibi_slopes = random_alibi_slopes(cfg.alibi, cfg.batch, cfg.h_q, rng);
  c.out = HostTensor::contiguous(cfg.dtype, {cfg.batch, cfg.s_q, cfg.h_q, d});
  c.out.poison();
  if (cfg.with_lse) {
    c.lse = HostTensor::contiguous(FLASHPLUS_DTYPE_FLOAT32, {cfg.batch, cfg.h_q, cfg.s_q});
    c.lse.poison();
  }

  flashplus_kvcache_args& a = c.args;
  flashplus_kvcache_args_init(&a);
  a.q = c.q.abi();
  a.k_cache = c.k_cache.abi();
  a.v_cache = c.v_cache.abi();
  a.k_new = c.k_new.abi();
  a.v_new = c.v_new.abi();
  a.rotary_cos = c.rotary_cos.abi();
  a.rotary_sin = c.rotary_sin.abi();
  a.cache_seqlens = c.cache_seqlens.abi();
  a.cache_batch_idx = c.cache_batch_idx.abi();
  a.cache_leftpad = c.cache_leftpad.abi();
  a.block_table = c.block_table.abi();
  a.alibi_slopes = c.alibi_slopes.abi();
  a.out = c.out.abi();
  a.softmax_lse = c.lse.abi();
  a.softmax_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  a.softcap = cfg.softcap;
  a.is_causal = cfg.causal;
  a.window_left = cfg.window_left;
  a.window_right = cfg.window_right;
  a.rotary_interleaved = cfg.rotary_interleaved;
  a.num_splits = cfg.num_splits;
  return c;
}

void check_kvcache(const flashplus_kvcache_args& args) {
  const int32_t dtype = args.q.dtype;
  const oracle::KvcacheReference exact = oracle::reference_kvcache(args, oracle::Rounding::exact());
  // Rounded to the input dtype: also what the cache must hold after the append.
  const oracle::KvcacheReference low =
      oracle::reference_kvcache(args, oracle::Rounding::like(dtype));
  const bool has_low = dtype != FLASHPLUS_DTYPE_FLOAT32;
  const RefArray q_before = read_tensor(args.q);
  const RefArray k_new_before = args.k_new.data ? read_tensor(args.k_new) : RefArray();
  const RefArray v_new_before = args.v_new.data ? read_tensor(args.v_new) : RefArray();

  poison_elements(args.out);
  poison_elements(args.softmax_lse);
  const flashplus_status status = flashplus_fwd_kvcache(&args);
  ASSERT_EQ(status, FLASHPLUS_STATUS_OK) << flashplus_status_name(status) << ": "
                                         << flashplus_last_error();
  EXPECT_STREQ(flashplus_last_error(), "");

  EXPECT_TRUE(matches_oracle("out", read_tensor(args.out), exact.out, has_low ? &low.out : nullptr,
                             dtype));
  if (args.softmax_lse.data) {
    EXPECT_TRUE(matches_oracle("softmax_lse", read_tensor(args.softmax_lse), exact.lse,
                               has_low ? &low.lse : nullptr, dtype));
  }

  // Without rotary the append is a copy: bit-exact. Rotated rows are computed in at least fp32
  // and rounded once, so they may differ from the fp64-then-rounded value by one unit in the last
  // place, i.e. 2 * u * |value| <= 2 * u * (max |row| * sqrt(2)); use 4 * u * scale.
  double tolerance = 0.0;
  if (args.rotary_cos.data) {
    double scale = 0.0;
    for (double value : low.k_cache.values) scale = std::max(scale, std::fabs(value));
    tolerance = 4.0 * unit_roundoff(dtype) * scale;
  }
  EXPECT_TRUE(all_close("k_cache after append", read_tensor(args.k_cache), low.k_cache, tolerance));
  EXPECT_TRUE(all_close("v_cache after append", read_tensor(args.v_cache), low.v_cache, 0.0));
  EXPECT_TRUE(all_close("q unchanged", read_tensor(args.q), q_before, 0.0));
  if (args.k_new.data) {
    EXPECT_TRUE(all_close("k_new unchanged", read_tensor(args.k_new), k_new_before, 0.0));
    EXPECT_TRUE(all_close("v_new unchanged", read_tensor(args.v_new), v_new_before, 0.0));
  }
}

}  // namespace fptest
