// tile_scheduler.cuh — maps a CTA to its work: (query tile, split, batch entry, query head).
//
// A flat 1-D grid (x can hold 2^31 - 1 CTAs; y and z only 65535) ordered so that CTAs sharing one
// head's K/V are adjacent (they hit the same L2 lines), and with query tiles in reverse order: under
// causal masking the last tiles see the most keys, and starting them first shortens the tail.
#pragma once

#include "fwd_params.h"

namespace flashplus {
namespace kernels {

struct FwdTile {
  int m_block;
  int split;
  int batch;
  int head;  // query head; the K/V head when the tile packs a GQA group (FwdParams::pack_gqa)
};

struct StaticTileScheduler {
  __host__ __device__ static int64_t grid_size(const FwdParams& p) {
    return static_cast<int64_t>(p.num_m_blocks) * p.num_splits * p.batch * heads(p);
  }

  __host__ __device__ static int heads(const FwdParams& p) { return p.pack_gqa ? p.h_k : p.h_q; }

  // linear < 2^31 (the launcher checks the grid size), so 32-bit division suffices.
  __device__ __forceinline__ static FwdTile tile(const FwdParams& p, int linear) {
    FwdTile t;
    const int m = linear % p.num_m_blocks;
    linear /= p.num_m_blocks;
    t.m_block = p.num_m_blocks - 1 - m;
    t.split = linear % p.num_splits;
    linear /= p.num_splits;
    const int num_heads = heads(p);
    t.head = linear % num_heads;
    t.batch = linear / num_heads;
    return t;
  }
};

}  // namespace kernels
}  // namespace flashplus
