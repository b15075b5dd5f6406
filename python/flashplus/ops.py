"""Attention entry points on torch tensors: allocate the outputs, run the selected backend.

These are the thin, framework-facing wrappers of the C ABI (flashplus.h gives the semantics):
no autograd, no head-dim padding, no flash-attn conventions (flash_attn/ adds those). The
backend is the compiled library unless FLASHPLUS_BACKEND=reference selects the plain-torch
reference path (slow; for debugging a suspected kernel bug).

Shapes: dense (b, s, h, d); varlen (total, h, d) with cu_seqlens (b + 1) int32; softmax_lse
fp32 (b, h_q, s_q) dense or (h_q, total_q) varlen.
"""
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch

from .errors import InvalidArgumentError

BACKENDS = ("auto", "reference")


def backend() -> str:
    """The backend selected by $FLASHPLUS_BACKEND: "auto" (compiled library) or "reference"."""
    name = os.environ.get("FLASHPLUS_BACKEND", "").strip().lower() or "auto"
    if name not in BACKENDS:
        raise InvalidArgumentError(
            f"FLASHPLUS_BACKEND={name!r} is not a backend; use one of {', '.join(BACKENDS)}")
    return name


def _impl():
    if backend() == "reference":
        from . import _reference
        return _reference
    from . import _native
    return _native


def _check_rank(t: Optional[torch.Tensor], name: str, ndim: int, layout: str) -> None:
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        raise InvalidArgumentError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        raise InvalidArgumentError(
            f"{name}: expected {ndim} dimensions {layout}, got shape {tuple(t.shape)}")


def _last_dim_contiguous(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    # The ABI needs a unit stride in the feature dimension; any other stride is honoured.
    if t is None or t.shape[-1] == 1 or t.stride(-1) == 1:
        return t
    return t.contiguous()


def _mask_window(causal: bool, window_left: int, window_right: int) -> Tuple[int, int]:
    return (window_left, 0) if causal else (window_left, window_right)


class FwdResult(NamedTuple):
    out: torch.Tensor
    softmax_lse: torch.Tensor
    s_dmask: Optional[torch.Tensor]


def fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
        cu_seqlens_q: Optional[torch.Tensor] = None, cu_seqlens_k: Optional[torch.Tensor] = None,
        max_seqlen_q: int = 0, max_seqlen_k: int = 0,
        seqused_k: Optional[torch.Tensor] = None, leftpad_k: Optional[torch.Tensor] = None,
        block_table: Optional[torch.Tensor] = None, alibi_slopes: Optional[torch.Tensor] = None,
        softmax_scale: Optional[float] = None, causal: bool = False,
        window_left: int = -1, window_right: int = -1, softcap: float = 0.0,
        dropout_p: float = 0.0, philox_seed: int = 0, philox_offset: int = 0,
        return_s_dmask: bool = False, num_splits: int = 0,
        out: Optional[torch.Tensor] = None) -> FwdResult:
    """out = softmax(scale * q k^T + mods) v; dense, varlen (cu_seqlens_q) or paged (block_table).
    s_dmask (b, h_q, max_s_q, max_s_k) holds the probabilities, negated where dropped."""
    varlen = cu_seqlens_q is not None
    q_layout = "(total_q, h_q, d)" if varlen else "(b, s_q, h_q, d)"
    _check_rank(q, "q", 3 if varlen else 4, q_layout)
    paged = block_table is not None
    kv_layout = "(num_blocks, page_size, h_k, d)" if paged else q_layout.replace("q", "k")
    _check_rank(k, "k", 4 if paged else q.dim(), kv_layout)
    _check_rank(v, "v", k.dim(), kv_layout)
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    if softmax_scale is None:
        softmax_scale = q.shape[-1] ** -0.5
    if varlen:
        _check_rank(cu_seqlens_q, "cu_seqlens_q", 1, "(b + 1)")
        batch, s_q = cu_seqlens_q.shape[0] - 1, int(max_seqlen_q)
        s_k = int(max_seqlen_k)
        lse_shape = (q.shape[1], q.shape[0])
    else:
        batch, s_q = q.shape[0], q.shape[1]
        s_k = k.shape[1]
        if paged:
            s_k = int(max_seqlen_k) or block_table.shape[-1] * k.shape[1]
        lse_shape = (batch, q.shape[2], s_q)
    if out is None:
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty(lse_shape, dtype=torch.float32, device=q.device)
    s_dmask = None
    if return_s_dmask:
        # max(): an empty cu_seqlens_q must reach the library's validation, not fail here.
        s_dmask = torch.zeros((max(batch, 0), q.shape[-2], s_q, s_k), dtype=q.dtype, device=q.device)
    window_left, window_right = _mask_window(causal, window_left, window_right)
    _impl().fwd(q, k, v, out, lse, s_dmask, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k,
                seqused_k=seqused_k, leftpad_k=leftpad_k, block_table=block_table,
                alibi_slopes=alibi_slopes, max_seqlen_q=s_q, max_seqlen_k=s_k,
                softmax_scale=softmax_scale, softcap=softcap, is_causal=causal,
                window_left=window_left, window_right=window_right, dropout_p=dropout_p,
                philox_seed=philox_seed, philox_offset=philox_offset, num_splits=num_splits)
    return FwdResult(out, lse, s_dmask)


def bwd(dout: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
        out: torch.Tensor, softmax_lse: torch.Tensor,
        dq: Optional[torch.Tensor] = None, dk: Optional[torch.Tensor] = None,
        dv: Optional[torch.Tensor] = None, *,
        cu_seqlens_q: Optional[torch.Tensor] = None, cu_seqlens_k: Optional[torch.Tensor] = None,
        max_seqlen_q: int = 0, max_seqlen_k: int = 0,
        alibi_slopes: Optional[torch.Tensor] = None, softmax_scale: Optional[float] = None,
        causal: bool = False, window_left: int = -1, window_right: int = -1,
        softcap: float = 0.0, dropout_p: float = 0.0, philox_seed: int = 0,
        philox_offset: int = 0, deterministic: bool = False
        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of fwd: writes dq, dk, dv (allocated when None); returns them and softmax_d."""
    varlen = cu_seqlens_q is not None
    layout = "(total, h, d)" if varlen else "(b, s, h, d)"
    for t, name in ((dout, "dout"), (q, "q"), (k, "k"), (v, "v"), (out, "out")):
        _check_rank(t, name, 3 if varlen else 4, layout)
    dout, q, k, v, out = (_last_dim_contiguous(t) for t in (dout, q, k, v, out))
    if softmax_scale is None:
        softmax_scale = q.shape[-1] ** -0.5
    dq = torch.empty_like(q) if dq is None else dq
    dk = torch.empty_like(k) if dk is None else dk
    dv = torch.empty_like(v) if dv is None else dv
    softmax_d = torch.empty(softmax_lse.shape, dtype=torch.float32, device=q.device)
    if not varlen:
        max_seqlen_q, max_seqlen_k = q.shape[1], k.shape[1]
    window_left, window_right = _mask_window(causal, window_left, window_right)
    _impl().bwd(dout, q, k, v, out, softmax_lse, dq, dk, dv, softmax_d, cu_seqlens_q=cu_seqlens_q,
                cu_seqlens_k=cu_seqlens_k, alibi_slopes=alibi_slopes,
                max_seqlen_q=int(max_seqlen_q), max_seqlen_k=int(max_seqlen_k),
                softmax_scale=softmax_scale, softcap=softcap, is_causal=causal,
                window_left=window_left, window_right=window_right, dropout_p=dropout_p,
                philox_seed=philox_seed, philox_offset=philox_offset, deterministic=deterministic)
    return dq, dk, dv, softmax_d


def fwd_kvcache(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                k: Optional[torch.Tensor] = None, v: Optional[torch.Tensor] = None, *,
                rotary_cos: Optional[torch.Tensor] = None,
                rotary_sin: Optional[torch.Tensor] = None,
                cache_seqlens: Optional[torch.Tensor] = None,
                cache_batch_idx: Optional[torch.Tensor] = None,
                cache_leftpad: Optional[torch.Tensor] = None,
                block_table: Optional[torch.Tensor] = None,
                alibi_slopes: Optional[torch.Tensor] = None,
                softmax_scale: Optional[float] = None, causal: bool = False,
                window_left: int = -1, window_right: int = -1, softcap: float = 0.0,
                rotary_interleaved: bool = True, num_splits: int = 0,
                return_softmax_lse: bool = True
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Decode / chunked prefill over a KV cache; appends k, v into the cache in place first."""
    layout = "(b, s, h, d)"
    _check_rank(q, "q", 4, layout)
    _check_rank(k_cache, "k_cache", 4, "(b_cache, s_cache, h_k, d) or paged")
    _check_rank(v_cache, "v_cache", 4, "(b_cache, s_cache, h_k, d) or paged")
    _check_rank(k, "k", 4, layout)
    _check_rank(v, "v", 4, layout)
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    if softmax_scale is None:
        softmax_scale = q.shape[-1] ** -0.5
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = None
    if return_softmax_lse:
        lse = torch.empty((q.shape[0], q.shape[2], q.shape[1]), dtype=torch.float32, device=q.device)
    _impl().fwd_kvcache(q, k_cache, v_cache, k, v, rotary_cos, rotary_sin, cache_seqlens,
                        cache_batch_idx, cache_leftpad, block_table, alibi_slopes, out, lse,
                        softmax_scale=softmax_scale, softcap=softcap, is_causal=causal,
                        window_left=window_left, window_right=window_right,
                        rotary_interleaved=rotary_interleaved, num_splits=num_splits)
    return out, lse


def combine(out_partials: Sequence[torch.Tensor], lse_partials: Sequence[torch.Tensor], *,
            out: Optional[torch.Tensor] = None, lse: Optional[torch.Tensor] = None,
            out_dtype: Optional[torch.dtype] = None, return_lse: bool = True
            ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Merge partial results over disjoint key sets by their LSE (split-KV, ring attention).
    out_partials: each (b, s, h, d); lse_partials: each fp32 (b, h, s). A partial with an
    infinite LSE saw no key. out may be out_partials[0] and lse lse_partials[0] (in place)."""
    out_partials: List[torch.Tensor] = list(out_partials)
    lse_partials = list(lse_partials)
    if not out_partials or len(out_partials) != len(lse_partials):
        raise InvalidArgumentError(
            "out_partials, lse_partials: expected the same number (>= 1) of outputs and LSEs, "
            f"got {len(out_partials)} and {len(lse_partials)}")
    for i, t in enumerate(out_partials):
        _check_rank(t, f"out_partials[{i}]", 4, "(b, s, h, d)")
    for i, t in enumerate(lse_partials):
        _check_rank(t, f"lse_partials[{i}]", 3, "(b, h, s)")
    first = out_partials[0]
    if out is None:
        out = torch.empty(first.shape, dtype=out_dtype or first.dtype, device=first.device)
    if lse is None and return_lse:
        lse = torch.empty(lse_partials[0].shape, dtype=torch.float32, device=first.device)
    _impl().combine(out_partials, lse_partials, out, lse)
    return out, lse
