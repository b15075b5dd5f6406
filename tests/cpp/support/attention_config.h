// attention_config.h — one attention problem as a test describes it, before any tensor exists.
//
// Shared by the forward, backward and dropout tests so a parametrised test is a list of configs.
// Every field has a small default; a config only names what it varies.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "flashplus/flashplus.h"

namespace fptest {

enum class Alibi { kNone, kPerHead, kPerBatchHead };

struct AttentionConfig {
  flashplus_dtype dtype = FLASHPLUS_DTYPE_FLOAT16;
  int64_t batch = 2, s_q = 17, s_k = 17, h_q = 4, h_k = 4, head_dim = 40;
  // Non-empty: varlen layout with these per-sequence lengths (batch = their count).
  std::vector<int32_t> seqlens_q, seqlens_k;
  // Non-empty: passed as seqused_k / leftpad_k (one entry per sequence). Forward only.
  std::vector<int32_t> seqused_k, leftpad_k;
  int64_t page_size = 0;  // > 0: K/V paged with this page size. Forward only.
  bool causal = false;
  int32_t window_left = -1, window_right = -1;
  float softcap = 0.f;
  Alibi alibi = Alibi::kNone;
  float dropout_p = 0.f;
  uint64_t philox_seed = 0x5eed1234abcdULL, philox_offset = 0;
  bool with_s_dmask = false;
  flashplus_dtype s_dmask_dtype = FLASHPLUS_DTYPE_FLOAT32;
  float softmax_scale = 0.f;  // 0: 1 / sqrt(head_dim)
  int32_t num_splits = 0;
  bool deterministic = false;  // backward only
  uint64_t data_seed = 1;
  std::string label;  // gtest parameter name; built from the fields when empty

  bool varlen() const { return !seqlens_q.empty(); }
  int64_t sequences() const { return varlen() ? static_cast<int64_t>(seqlens_q.size()) : batch; }
  float scale() const;
  std::string name() const;
};

// How gtest prints a config (in failure messages and ctest names): its name.
inline void PrintTo(const AttentionConfig& config, std::ostream* os) { *os << config.name(); }

// gtest's parameter-name generator for any TestWithParam<AttentionConfig>.
struct ConfigName {
  template <typename Info>
  std::string operator()(const Info& info) const { return info.param.name(); }
};

}  // namespace fptest
