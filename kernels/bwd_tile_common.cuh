// bwd_tile_common.cuh — what the dK/dV kernels of both paths (sm80 mma.sync, sm90 wgmma) share:
// which query tiles a CTA of keys visits and in which order, each step's Q / dO / LSE / D loads,
// and the fused mode's dQ atomics. Everything here is independent of the MMA flavour.
#pragma once

#include <cstdint>

#include <cute/tensor.hpp>

#include "bwd_params.h"
#include "seqlen_info.cuh"
#include "tile_io_sm80.cuh"

namespace flashplus {
namespace kernels {

__device__ __forceinline__ void cp_async_4(void* smem_dst, const void* gmem_src) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(gmem_src));
}

// Starts the copy of the LSE and D of the tile's rows into shared memory (part of the caller's
// cp.async group); rows outside the sequence get lse = +inf (P = 0) and D = 0. The LSE stays in
// natural log here; the score-gradient steps scale it.
template <int kBlockM>
__device__ __forceinline__ void load_row_stats(const BwdParams& p, const SeqlenInfo& seq, int m0, int head,
                                               float* row_lse, float* row_d, int tid) {
  if (tid < kBlockM) {
    const int row = m0 + tid;
    if (row < seq.seqlen_q) {
      cp_async_4(&row_lse[tid], &p.fwd.lse.data[seq.stats_offset(p.fwd.lse, row, head)]);
      cp_async_4(&row_d[tid], &p.softmax_d.data[seq.stats_offset(p.softmax_d, row, head)]);
    } else {
      row_lse[tid] = INFINITY;
      row_d[tid] = 0.f;
    }
  }
}

// Adds an fp32 accumulator fragment (value mode starting with a (col c, c + 1) pair, as both the
// mma.sync and the wgmma layouts have, fragment_layout.cuh) into the rows of dq_accum that start
// at `rows` (query row m0 of one head; row pitch h_q * kHeadDim floats). coords: the fragment's
// (row, col) per value. sm90 adds each pair with one 64-bit atomic. The results are unused, so
// these compile to fire-and-forget reductions (RED), not round trips.
template <typename Acc, typename Coords>
__device__ __forceinline__ void atomic_add_fragment(float* rows, int64_t row_pitch, const Acc& acc,
                                                    const Coords& coords) {
  using namespace cute;
  static_assert(decltype(size<0, 0>(acc))::value == 2, "accumulator values come in (col c, c + 1) pairs");
#pragma unroll
  for (int e = 0; e < size(acc); e += 2) {
    float* at = rows + get<0>(coords(e)) * row_pitch + get<1>(coords(e));
#if defined(FLASHPLUS_ONE_PTX_FOR_ALL_ARCHS)
#error "code that tests __CUDA_ARCH__ in a target whose PTX is made once for every architecture: list its variants in variants.py's needs_ptx_per_arch"
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    atomicAdd(reinterpret_cast<float2*>(at), make_float2(acc(e), acc(e + 1)));
#else
    atomicAdd(at, acc(e));
    atomicAdd(at + 1, acc(e + 1));
#endif
  }
}

// The query tiles [first, end) whose rows see some key of [key_begin, key_end) under the window
// rule (causal is a window); a dK/dV CTA of those keys visits each of them once per query head of
// its GQA group. A tile whose rows see only some of the keys computes P = dS = 0 for the rest.
struct QueryBlocks {
  int first = 0;
  int end = 0;
};

template <int kBlockM>
__device__ __forceinline__ QueryBlocks query_blocks_seeing_keys(const FwdParams& f, const SeqlenInfo& seq,
                                                                int key_begin, int key_end) {
  const int diagonal = seq.seqlen_k - seq.seqlen_q;
  int first_row = 0, last_row = seq.seqlen_q - 1;
  if (f.window_right >= 0) first_row = max(first_row, key_begin - diagonal - f.window_right);
  if (f.window_left >= 0) last_row = min(last_row, key_end - 1 + f.window_left - diagonal);
  QueryBlocks blocks;
  blocks.first = first_row / kBlockM;
  blocks.end = first_row <= last_row ? last_row / kBlockM + 1 : blocks.first;
  return blocks;
}

// The dK/dV CTA's steps, head-major: (query head of the GQA group, query tile) pairs. Advanced by
// counting rather than divided out of a step index: a division per step was a measurable share of
// the issue slots.
struct BwdStep {
  int head;
  int m_block;
  __device__ __forceinline__ void advance(const QueryBlocks& blocks) {
    if (++m_block == blocks.end) {
      m_block = blocks.first;
      ++head;
    }
  }
};

// Starts the copies of one step's query-side inputs (part of the caller's cp.async group): rows
// [m0, m0 + kBlockM) of Q and dO for query head at.head (rows past the sequence zero-filled) and
// their LSE and D.
template <int kBlockM, int kHeadDim, int kNThreads, typename Element, typename SmemTileQ, typename SmemTileDO>
__device__ __forceinline__ void load_step_inputs(const BwdParams& p, const SeqlenInfo& seq, const BwdStep& at,
                                                 SmemTileQ& sQ, SmemTileDO& sdO, float* row_lse, float* row_d,
                                                 int tid) {
  const FwdParams& f = p.fwd;
  const int m0 = at.m_block * kBlockM;
  load_strided_rows<kBlockM, kHeadDim, kNThreads>(
      sQ, static_cast<const Element*>(f.q.data) + seq.query_offset(f.q, m0, at.head), f.q.row_stride,
      seq.seqlen_q - m0, f.head_dim, f.q.aligned16, tid);
  load_strided_rows<kBlockM, kHeadDim, kNThreads>(
      sdO, static_cast<const Element*>(p.dout.data) + seq.query_offset(p.dout, m0, at.head), p.dout.row_stride,
      seq.seqlen_q - m0, f.head_dim, p.dout.aligned16, tid);
  load_row_stats<kBlockM>(p, seq, m0, at.head, row_lse, row_d, tid);
}

}  // namespace kernels
}  // namespace flashplus
