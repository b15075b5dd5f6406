// block_info.cuh — which key tiles one query tile (and one split of it) must visit.
//
// A query tile covers rows [m0, m1). Under the window rule (mask.cuh) its rows see keys in
// [m0 + o - left, m1 - 1 + o + right], clipped to [0, s_k); key tiles outside are skipped, which is
// where causal and sliding-window attention save their work. With split-KV the visited tiles of
// each query tile are cut into num_splits contiguous chunks of near-equal length, so every split
// of a causal problem gets a fair share (an empty chunk still writes its empty partial).
#pragma once

#include "fwd_params.h"

namespace flashplus {
namespace kernels {

struct KeyBlockRange {
  int begin = 0;  // first key tile
  int end = 0;    // one past the last key tile; begin >= end means nothing to visit

  __device__ __forceinline__ bool empty() const { return end <= begin; }
};

__device__ __forceinline__ int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Key tiles seen by queries [first_query, last_query] (inclusive, within the sequence).
template <int kBlockN>
__device__ __forceinline__ KeyBlockRange key_block_range_for_queries(const FwdParams& p, int first_query,
                                                                     int last_query, int seqlen_q, int seqlen_k,
                                                                     int split, int num_splits) {
  const int diagonal = seqlen_k - seqlen_q;
  KeyBlockRange range{0, (seqlen_k + kBlockN - 1) / kBlockN};
  if (p.window_right >= 0) {
    const int last_key = last_query + diagonal + p.window_right;  // last key the last row sees
    range.end = min(range.end, max(0, floor_div(last_key, kBlockN) + 1));
  }
  if (p.window_left >= 0) {
    const int first_key = first_query + diagonal - p.window_left;  // first key the first row sees
    range.begin = max(0, floor_div(first_key, kBlockN));
  }
  if (num_splits > 1 && !range.empty()) {
    const int per_split = (range.end - range.begin + num_splits - 1) / num_splits;
    const int begin = range.begin + split * per_split;
    range.end = min(range.end, begin + per_split);
    range.begin = begin;
  }
  return range;
}

template <int kBlockM, int kBlockN>
__device__ __forceinline__ KeyBlockRange key_block_range(const FwdParams& p, int m_block, int seqlen_q,
                                                         int seqlen_k, int split, int num_splits) {
  const int m0 = m_block * kBlockM;
  const int m1 = min(m0 + kBlockM, seqlen_q);
  return key_block_range_for_queries<kBlockN>(p, m0, m1 - 1, seqlen_q, seqlen_k, split, num_splits);
}

}  // namespace kernels
}  // namespace flashplus
