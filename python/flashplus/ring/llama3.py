"""Llama 3 style context parallelism for packed (varlen) batches: all-gather K/V, attend locally.

The packed batch of T tokens is cut into N equal contiguous slices, one per rank, regardless of
sequence boundaries. A rank's queries need keys from the start of their sequence, so every rank
all-gathers K/V and attends to the slice `local_k_slice` of the gathered tokens; in backward the
dK/dV of the gathered tokens are reduce-scattered back to their owners. To bound memory, heads
are processed `heads_k_stride` K/V heads at a time, and the next group's gather runs while the
current group computes.

llama3_flash_attn_prepare_cu_seqlens gives the local cu_seqlens with ring-flash-attn's meaning:
each local sequence's keys run from the sequence start to the end of the local queries (causal)
or to the sequence end (not causal). Windows are applied on true token positions (recovered
from the rank, the local token count and local_k_slice), so window_size works too.
"""
import functools
from typing import List, Optional, Tuple

import torch
import torch.distributed as dist

from .autograd import reject_unsupported
from .comm import all_gather_async, reduce_scatter_async
from .kernels import (AttentionParams, block_backward, block_forward, merge_into,
                      new_accumulators)
from .masks import Block, Segment, visible_block
from .plan import KernelCall, normalize_window, varlen_calls


def llama3_flash_attn_prepare_cu_seqlens(cu_seqlens: torch.Tensor, causal: bool, rank: int,
                                         world_size: int):
    """(cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, local_k_slice) of `rank` for the
    global packed cu_seqlens. Local queries are tokens [rank T/N, (rank+1) T/N)."""
    cu = [int(c) for c in cu_seqlens.tolist()]
    total = cu[-1]
    if total % world_size:
        raise ValueError(f"cu_seqlens: the packed token count {total} must be divisible by the "
                         f"world size {world_size}")
    per_rank = total // world_size
    lo, hi = rank * per_rank, (rank + 1) * per_rank
    seqs = [i for i in range(len(cu) - 1) if cu[i] < hi and cu[i + 1] > lo]
    k_start = cu[seqs[0]]
    q_ends = [min(cu[i + 1], hi) - lo for i in seqs]
    k_ends = [(min(cu[i + 1], hi) if causal else cu[i + 1]) - k_start for i in seqs]
    cu_q = [0] + q_ends
    cu_k = [0] + k_ends
    device = cu_seqlens.device
    return (torch.tensor(cu_q, dtype=torch.int32, device=device),
            torch.tensor(cu_k, dtype=torch.int32, device=device),
            max(b - a for a, b in zip(cu_q[:-1], cu_q[1:])),
            max(b - a for a, b in zip(cu_k[:-1], cu_k[1:])),
            slice(k_start, k_start + k_ends[-1]))


@functools.lru_cache(maxsize=64)
def _calls(cu_q: Tuple[int, ...], cu_k: Tuple[int, ...], q_global_start: int, k_global_start: int,
           window_left: int, window_right: int, device: torch.device) -> Tuple[KernelCall, ...]:
    blocks: List[Block] = []
    for i in range(len(cu_q) - 1):
        # Keys of local sequence i start at the sequence's first token.
        seq_start = k_global_start + cu_k[i]
        queries = Segment(cu_q[i], cu_q[i + 1] - cu_q[i], q_global_start + cu_q[i] - seq_start)
        keys = Segment(cu_k[i], cu_k[i + 1] - cu_k[i], 0)
        if queries.length and keys.length:
            blk = visible_block(queries, keys, window_left, window_right)
            if blk is not None:
                blocks.append(blk)
    return tuple(varlen_calls(blocks, device))


def _head_groups(q: torch.Tensor, k: torch.Tensor, heads_k_stride: int):
    h_q, h_k = q.shape[1], k.shape[1]
    if heads_k_stride <= 0 or h_k % heads_k_stride:
        raise ValueError(f"heads_k_stride {heads_k_stride} must divide the K/V head count {h_k}")
    if h_q % h_k:
        raise ValueError(f"q heads ({h_q}) must be a multiple of k heads ({h_k})")
    group = h_q // h_k
    return [(slice(s * group, (s + heads_k_stride) * group), slice(s, s + heads_k_stride))
            for s in range(0, h_k, heads_k_stride)]


def _gather_kv(k, v, heads: slice, group):
    # K and V of a head group travel as one (T, 2, heads, d) tensor: one collective, not two.
    return all_gather_async(torch.stack([k[:, heads], v[:, heads]], dim=1), group)


def _forward(q, k, v, calls, k_slice: slice, heads_k_stride, params, group):
    out = torch.empty_like(q)
    lse = torch.empty((q.shape[1], q.shape[0]), dtype=torch.float32, device=q.device)
    groups = _head_groups(q, k, heads_k_stride)
    pending = _gather_kv(k, v, groups[0][1], group)
    for index, (q_heads, kv_heads) in enumerate(groups):
        kv = pending.wait()[0][k_slice]
        if index + 1 < len(groups):
            pending = _gather_kv(k, v, groups[index + 1][1], group)
        q_part = q[:, q_heads]
        acc_out, acc_lse = new_accumulators(q_part, (q_part.shape[1], q_part.shape[0]))
        for call in calls:
            part_out, part_lse = block_forward(call, q_part, kv[:, 0], kv[:, 1], params)
            merge_into(call, acc_out, acc_lse, part_out, part_lse)
        out[:, q_heads] = acc_out
        lse[q_heads] = acc_lse
    return out, lse


def _backward(dout, q, k, v, out, lse, calls, k_slice: slice, heads_k_stride, params, group):
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    world_size = dist.get_world_size(group)
    groups = _head_groups(q, k, heads_k_stride)
    pending = _gather_kv(k, v, groups[0][1], group)
    scattering: Optional[Tuple] = None
    for index, (q_heads, kv_heads) in enumerate(groups):
        kv = pending.wait()[0][k_slice]
        if index + 1 < len(groups):
            pending = _gather_kv(k, v, groups[index + 1][1], group)
        dq_part = torch.zeros(q[:, q_heads].shape, dtype=torch.float32, device=q.device)
        dkv_all = torch.zeros((world_size * k.shape[0], 2) + tuple(kv.shape[2:]),
                              dtype=torch.float32, device=k.device)
        dkv = dkv_all[k_slice]
        for call in calls:
            dq_c, dk_c, dv_c = block_backward(call, dout[:, q_heads], q[:, q_heads], kv[:, 0],
                                              kv[:, 1], out[:, q_heads], lse[q_heads], params)
            call.q_rows(dq_part).add_(dq_c)
            call.k_rows(dkv[:, 0]).add_(dk_c)
            call.k_rows(dkv[:, 1]).add_(dv_c)
        dq[:, q_heads] = dq_part
        if scattering is not None:
            _store_dkv(scattering, dk, dv)
        scattering = (reduce_scatter_async(dkv_all, group), kv_heads)
    _store_dkv(scattering, dk, dv)
    return dq, dk, dv


def _store_dkv(scattering, dk, dv) -> None:
    pending, kv_heads = scattering
    mine = pending.wait()[0]
    dk[:, kv_heads] = mine[:, 0]
    dv[:, kv_heads] = mine[:, 1]


class Llama3Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, calls, k_slice, heads_k_stride, params: AttentionParams, group):
        out, lse = _forward(q, k, v, calls, k_slice, heads_k_stride, params, group)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.args = (calls, k_slice, heads_k_stride, params, group)
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _backward(dout, q, k, v, out, lse, *ctx.args)
        return dq, dk, dv, None, None, None, None, None


def llama3_flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                  max_seqlen_k, heads_k_stride, local_k_slice, dropout_p=0.0,
                                  softmax_scale=None, causal=False, window_size=(-1, -1),
                                  alibi_slopes=None, deterministic=False,
                                  return_attn_probs=False, group=None, softcap=0.0):
    """q (T/N, h, d), k/v (T/N, h_k, d): this rank's slice of the packed batch; cu_seqlens_q/k,
    max_seqlen_q/k and local_k_slice from llama3_flash_attn_prepare_cu_seqlens. Returns out, or
    (out, softmax_lse (h, T/N) fp32, None) with return_attn_probs."""
    reject_unsupported(dropout_p, alibi_slopes)
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("llama3_flash_attn_varlen_func needs torch.distributed initialised")
    rank = dist.get_rank(group)
    window_left, window_right = normalize_window(causal, window_size)
    calls = _calls(tuple(int(c) for c in cu_seqlens_q.tolist()),
                   tuple(int(c) for c in cu_seqlens_k.tolist()), rank * q.shape[0],
                   int(local_k_slice.start), window_left, window_right, torch.device(q.device))
    scale = q.shape[-1] ** -0.5 if softmax_scale is None else float(softmax_scale)
    params = AttentionParams(scale, float(softcap or 0.0), bool(deterministic))
    out, lse = Llama3Attention.apply(q, k, v, calls, local_k_slice, heads_k_stride, params, group)
    return (out, lse, None) if return_attn_probs else out


def llama3_flash_attn_varlen_kvpacked_func(q, kv, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                           max_seqlen_k, heads_k_stride, local_k_slice,
                                           dropout_p=0.0, softmax_scale=None, causal=False,
                                           window_size=(-1, -1), alibi_slopes=None,
                                           deterministic=False, return_attn_probs=False,
                                           group=None, softcap=0.0):
    return llama3_flash_attn_varlen_func(
        q, kv[:, 0], kv[:, 1], cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
        heads_k_stride, local_k_slice, dropout_p, softmax_scale, causal, window_size,
        alibi_slopes, deterministic, return_attn_probs, group, softcap)


def llama3_flash_attn_varlen_qkvpacked_func(qkv, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                            max_seqlen_k, heads_k_stride, local_k_slice,
                                            dropout_p=0.0, softmax_scale=None, causal=False,
                                            window_size=(-1, -1), alibi_slopes=None,
                                            deterministic=False, return_attn_probs=False,
                                            group=None, softcap=0.0):
    return llama3_flash_attn_varlen_func(
        qkv[:, 0], qkv[:, 1], qkv[:, 2], cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
        max_seqlen_k, heads_k_stride, local_k_slice, dropout_p, softmax_scale, causal,
        window_size, alibi_slopes, deterministic, return_attn_probs, group, softcap)
