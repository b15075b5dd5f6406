// kvcache_case.h — build, run and check one flashplus_fwd_kvcache call.
//
// The check covers the whole contract: out and softmax_lse against the oracles, the caches after
// the call (appended rows equal the rotated k_new / v_new, every other row byte-identical), and
// the inputs q, k_new, v_new left untouched.
#pragma once

#include <ostream>
#include <vector>

#include "flashplus/flashplus.h"
#include "support/attention_config.h"
#include "support/host_tensor.h"

namespace fptest {

struct KvcacheConfig {
  flashplus_dtype dtype = FLASHPLUS_DTYPE_FLOAT16;
  int64_t batch = 2, s_q = 1, h_q = 4, h_k = 2, head_dim = 40;
  int64_t capacity = 24;      // cache rows per sequence (paged: rounded up to whole pages)
  int64_t cache_batch = 0;    // cache entries (0: batch); > batch with cache_batch_idx
  std::vector<int32_t> cache_seqlens;  // empty: absent (the whole cache is valid)
  int64_t s_new = 0;          // rows of k_new / v_new to append (0: none)
  std::vector<int32_t> cache_batch_idx, cache_leftpad;  // empty: absent
  int64_t page_size = 0;      // > 0: paged cache
  int32_t rotary_dim = 0;     // 0: no rotary
  bool rotary_interleaved = false;
  bool causal = false;
  int32_t window_left = -1, window_right = -1;
  float softcap = 0.f;
  Alibi alibi = Alibi::kNone;
  int32_t num_splits = 0;
  bool with_lse = true;
  uint64_t data_seed = 7;
  std::string label;

  std::string name() const;
};

inline void PrintTo(const KvcacheConfig& config, std::ostream* os) { *os << config.name(); }

struct KvcacheCase {
  KvcacheConfig config;
  HostTensor q, k_cache, v_cache, k_new, v_new, rotary_cos, rotary_sin;
  HostTensor cache_seqlens, cache_batch_idx, cache_leftpad, block_table, alibi_slopes, out, lse;
  flashplus_kvcache_args args{};
};

KvcacheCase make_kvcache_case(const KvcacheConfig& config);

// Oracle first (it reads the caches before the append), then call and compare everything.
void check_kvcache(const flashplus_kvcache_args& args);

}  // namespace fptest
