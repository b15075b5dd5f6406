// validate.h — C ABI arguments -> validated problems.
//
// Each validate_* checks every argument (shapes, strides, dtypes, devices, scalar ranges) and, when
// `read_contents` is true (CPU tensors, not a dry run), the contents of index tensors (cu_seqlens,
// seqused_k, leftpad, block_table, cache_seqlens, cache_batch_idx), so that no later read can go out
// of bounds. It throws ArgumentError naming the argument and the rule; it never touches float data.
#pragma once

#include <vector>

#include "problem.h"

namespace flashplus {

FwdProblem validate_fwd(const flashplus_fwd_args& args, bool read_contents);
BwdProblem validate_bwd(const flashplus_bwd_args& args, bool read_contents);

// A KV-cache call is an append (+ rotary) step followed by an ordinary forward over the cache.
// append.q_rotated and attention.q are left for the dispatcher to point at a workspace when
// rotary is on (needs_q_workspace).
struct KvCachePlan {
  KvAppendProblem append;
  FwdProblem attention;
  bool needs_q_workspace = false;
  size_t q_workspace_elements = 0;  // b * s_q * h_q * d, in q's dtype
};
KvCachePlan validate_kvcache(const flashplus_kvcache_args& args, bool read_contents);

struct CombinePlan {
  CombineProblem problem;
  std::vector<RowsView> out_views;
  std::vector<RowStatsView> lse_views;
};
CombinePlan validate_combine(const flashplus_combine_args& args, bool read_contents);

// Reads `struct_size` and copies the caller's struct into a full-size local one, rejecting sizes
// this library cannot interpret.
template <typename Args>
Args copy_args(const Args* args, const char* struct_name);

}  // namespace flashplus
