"""ring-flash-attn's public functions (ring, zigzag, stripe; dense and varlen; plain, kvpacked
and qkvpacked), plus a `softcap` keyword.

Every rank passes its own shard (layouts.py shows what each layout holds; layouts.shard makes
one from the full sequence). Dense: q (b, s_local, h, d), k/v (b, s_local, h_k, d). Varlen:
q (total_local, h, d) with the local cu_seqlens (the global ones divided by world size) and the
local max_seqlen. Returns out, or (out, softmax_lse, None) with return_attn_probs; the LSE is
fp32 (b, h, s_local) dense or (h, total_local) varlen, for this rank's rows.

Masks are those of the full sequence: causal and window_size (left, right) apply to global
token positions, as if one device ran flash_attn_func on the unsharded sequence.
"""
from typing import Optional, Sequence

import torch

from .autograd import RingAttention, reject_unsupported
from .comm import RingComm
from .kernels import AttentionParams
from .layouts import check_length
from .plan import dense_ring_plan, normalize_window, varlen_ring_plan


def _params(q: torch.Tensor, softmax_scale: Optional[float], softcap: float,
            deterministic: bool) -> AttentionParams:
    scale = q.shape[-1] ** -0.5 if softmax_scale is None else float(softmax_scale)
    return AttentionParams(scale, float(softcap or 0.0), bool(deterministic))


def _check_dims(q, k, v, ndim: int, layout: str) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != ndim:
            raise ValueError(f"{name}: expected {ndim} dimensions {layout}, got shape {tuple(t.shape)}")


def _result(out, lse, return_attn_probs: bool):
    return (out, lse, None) if return_attn_probs else out


def ring_attention(q, k, v, layout: str, dropout_p: float = 0.0,
                   softmax_scale: Optional[float] = None, causal: bool = False,
                   window_size: Sequence[int] = (-1, -1), alibi_slopes=None,
                   deterministic: bool = False, return_attn_probs: bool = False, group=None,
                   softcap: float = 0.0):
    """Dense ring attention over `group` with the given layout ("contiguous", "zigzag", "stripe")."""
    reject_unsupported(dropout_p, alibi_slopes)
    _check_dims(q, k, v, 4, "(b, s_local, h, d)")
    comm = RingComm(group)
    local_length = q.shape[1]
    if k.shape[1] != local_length:
        raise ValueError(f"k: every rank must hold as many keys as queries ({local_length}), "
                         f"got {k.shape[1]}")
    check_length(local_length * comm.world_size, layout, comm.world_size)
    window_left, window_right = normalize_window(causal, window_size)
    plan = dense_ring_plan(layout, comm.rank, comm.world_size, local_length, window_left,
                           window_right)
    out, lse = RingAttention.apply(q, k, v, plan, comm,
                                   _params(q, softmax_scale, softcap, deterministic), False)
    return _result(out, lse, return_attn_probs)


def ring_attention_varlen(q, k, v, cu_seqlens: torch.Tensor, max_seqlen: int, layout: str,
                          dropout_p: float = 0.0, softmax_scale: Optional[float] = None,
                          causal: bool = False, window_size: Sequence[int] = (-1, -1),
                          alibi_slopes=None, deterministic: bool = False,
                          return_attn_probs: bool = False, group=None, softcap: float = 0.0):
    """Varlen ring attention: every sequence is split over the ranks with `layout`;
    cu_seqlens are this rank's (global / world size). max_seqlen is accepted for API
    compatibility; the plan derives each call's own bound."""
    reject_unsupported(dropout_p, alibi_slopes)
    _check_dims(q, k, v, 3, "(total_local, h, d)")
    comm = RingComm(group)
    cu = [int(c) for c in cu_seqlens.tolist()]
    if cu[-1] != q.shape[0] or k.shape[0] != q.shape[0]:
        raise ValueError(f"cu_seqlens: the last entry ({cu[-1]}) must equal the local token count "
                         f"of q ({q.shape[0]}) and k ({k.shape[0]})")
    for i in range(len(cu) - 1):
        check_length((cu[i + 1] - cu[i]) * comm.world_size, layout, comm.world_size,
                     f"sequence {i} length")
    window_left, window_right = normalize_window(causal, window_size)
    plan = varlen_ring_plan(layout, comm.rank, comm.world_size, cu, window_left, window_right,
                            q.device)
    out, lse = RingAttention.apply(q, k, v, plan, comm,
                                   _params(q, softmax_scale, softcap, deterministic), True)
    return _result(out, lse, return_attn_probs)


def _dense_family(layout: str, prefix: str):
    def func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
             alibi_slopes=None, deterministic=False, return_attn_probs=False, group=None,
             softcap=0.0):
        return ring_attention(q, k, v, layout, dropout_p, softmax_scale, causal, window_size,
                              alibi_slopes, deterministic, return_attn_probs, group, softcap)

    def kvpacked_func(q, kv, dropout_p=0.0, softmax_scale=None, causal=False,
                      window_size=(-1, -1), alibi_slopes=None, deterministic=False,
                      return_attn_probs=False, group=None, softcap=0.0):
        return func(q, kv[:, :, 0], kv[:, :, 1], dropout_p, softmax_scale, causal, window_size,
                    alibi_slopes, deterministic, return_attn_probs, group, softcap)

    def qkvpacked_func(qkv, dropout_p=0.0, softmax_scale=None, causal=False,
                       window_size=(-1, -1), alibi_slopes=None, deterministic=False,
                       return_attn_probs=False, group=None, softcap=0.0):
        return func(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], dropout_p, softmax_scale, causal,
                    window_size, alibi_slopes, deterministic, return_attn_probs, group, softcap)

    return _named(prefix, layout, "q (b, s_local, h, d), k/v (b, s_local, h_k, d)",
                  func, kvpacked_func, qkvpacked_func)


def _varlen_family(layout: str, prefix: str):
    def func(q, k, v, cu_seqlens, max_seqlen, dropout_p=0.0, softmax_scale=None, causal=False,
             window_size=(-1, -1), alibi_slopes=None, deterministic=False,
             return_attn_probs=False, group=None, softcap=0.0):
        return ring_attention_varlen(q, k, v, cu_seqlens, max_seqlen, layout, dropout_p,
                                     softmax_scale, causal, window_size, alibi_slopes,
                                     deterministic, return_attn_probs, group, softcap)

    def kvpacked_func(q, kv, cu_seqlens, max_seqlen, dropout_p=0.0, softmax_scale=None,
                      causal=False, window_size=(-1, -1), alibi_slopes=None,
                      deterministic=False, return_attn_probs=False, group=None, softcap=0.0):
        return func(q, kv[:, 0], kv[:, 1], cu_seqlens, max_seqlen, dropout_p, softmax_scale,
                    causal, window_size, alibi_slopes, deterministic, return_attn_probs, group,
                    softcap)

    def qkvpacked_func(qkv, cu_seqlens, max_seqlen, dropout_p=0.0, softmax_scale=None,
                       causal=False, window_size=(-1, -1), alibi_slopes=None,
                       deterministic=False, return_attn_probs=False, group=None, softcap=0.0):
        return func(qkv[:, 0], qkv[:, 1], qkv[:, 2], cu_seqlens, max_seqlen, dropout_p,
                    softmax_scale, causal, window_size, alibi_slopes, deterministic,
                    return_attn_probs, group, softcap)

    return _named(prefix + "_varlen", layout,
                  "q (total_local, h, d), k/v (total_local, h_k, d), local cu_seqlens",
                  func, kvpacked_func, qkvpacked_func)


def _named(prefix: str, layout: str, shapes: str, func, kvpacked_func, qkvpacked_func):
    for fn, suffix in ((func, "_func"), (kvpacked_func, "_kvpacked_func"),
                       (qkvpacked_func, "_qkvpacked_func")):
        fn.__name__ = fn.__qualname__ = prefix + suffix
        fn.__module__ = "flashplus.ring"
        fn.__doc__ = (f"Ring attention over `group`, {layout} layout; {shapes}. "
                      "See flashplus.ring.api for the contract.")
    return func, kvpacked_func, qkvpacked_func


ring_flash_attn_func, ring_flash_attn_kvpacked_func, ring_flash_attn_qkvpacked_func = \
    _dense_family("contiguous", "ring_flash_attn")
zigzag_ring_flash_attn_func, zigzag_ring_flash_attn_kvpacked_func, \
    zigzag_ring_flash_attn_qkvpacked_func = _dense_family("zigzag", "zigzag_ring_flash_attn")
stripe_flash_attn_func, stripe_flash_attn_kvpacked_func, stripe_flash_attn_qkvpacked_func = \
    _dense_family("stripe", "stripe_flash_attn")

ring_flash_attn_varlen_func, ring_flash_attn_varlen_kvpacked_func, \
    ring_flash_attn_varlen_qkvpacked_func = _varlen_family("contiguous", "ring_flash_attn")
zigzag_ring_flash_attn_varlen_func, zigzag_ring_flash_attn_varlen_kvpacked_func, \
    zigzag_ring_flash_attn_varlen_qkvpacked_func = _varlen_family("zigzag", "zigzag_ring_flash_attn")
stripe_flash_attn_varlen_func, stripe_flash_attn_varlen_kvpacked_func, \
    stripe_flash_attn_varlen_qkvpacked_func = _varlen_family("stripe", "stripe_flash_attn")
