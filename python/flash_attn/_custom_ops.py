"""flash-attn's private forward/backward functions, registered as torch.library custom ops.

Names, parameter names, defaults and return values follow flash-attn 2.7+ because other tools
(ring-flash-attn, ms-swift, ...) import these functions, call them by keyword and introspect
their parameters (also through CustomOpDef._init_fn). The differences are ours to define:
outputs come from flashplus (CPU and CUDA), lse/softmax_d are exactly (b, h, s_q) or
(h, total_q) (no rounding of s_q to 128), and S_dmask is exactly (b, h, max_s_q, max_s_k).

Each op has a fake (meta) implementation so torch.compile can trace through it without running it.
Dropout: the forward draws a Philox (seed, offset) and returns it as rng_state; the backward
takes it back so both passes drop the same entries.
"""
from typing import Optional, Tuple

import torch

from flashplus import _rng, ops
from flashplus.errors import InvalidArgumentError
from flashplus._torch_library import custom_op as _custom_op
from flashplus._torch_library import op_handle as _op_handle
from flashplus._torch_library import register_fake as _register_fake


def _no_s_dmask(q: torch.Tensor) -> torch.Tensor:
    return torch.empty((0,), dtype=q.dtype, device=q.device)


def _new_rng(dropout_p: float, device: torch.device):
    if dropout_p <= 0:
        return 0, 0, torch.empty((2,), dtype=torch.int64, device=device)
    seed, offset = _rng.draw(device)
    return seed, offset, _rng.to_state(seed, offset, device)


def _stored_rng(dropout_p: float, rng_state: Optional[torch.Tensor]):
    if dropout_p <= 0:
        return 0, 0
    if rng_state is None:
        raise InvalidArgumentError(
            "rng_state: required when dropout_p > 0 (pass the forward's rng_state)")
    return _rng.from_state(rng_state)


@_custom_op("flash_attn::_flash_attn_forward", mutates_args=())
def _flash_attn_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dropout_p: float,
    softmax_scale: float,
    causal: bool,
    window_size_left: int,
    window_size_right: int,
    softcap: float,
    alibi_slopes: Optional[torch.Tensor],
    return_softmax: bool,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dense forward. q (b, s_q, h_q, d), k/v (b, s_k, h_k, d).
    Returns (out, softmax_lse (b, h_q, s_q) fp32, S_dmask or empty, rng_state int64 (2,))."""
    seed, offset, rng_state = _new_rng(dropout_p, q.device)
    out, lse, s_dmask = ops.fwd(
        q, k, v, alibi_slopes=alibi_slopes, softmax_scale=softmax_scale, causal=causal,
        window_left=window_size_left, window_right=window_size_right, softcap=softcap,
        dropout_p=dropout_p, philox_seed=seed, philox_offset=offset,
        return_s_dmask=return_softmax)
    return out, lse, s_dmask if return_softmax else _no_s_dmask(q), rng_state


@_register_fake(_flash_attn_forward)
def _flash_attn_forward_fake(q, k, v, dropout_p, softmax_scale, causal, window_size_left,
                             window_size_right, softcap, alibi_slopes, return_softmax):
    b, s_q, h_q, _ = q.shape
    lse = torch.empty((b, h_q, s_q), dtype=torch.float32, device=q.device)
    s_dmask = _no_s_dmask(q)
    if return_softmax:
        s_dmask = torch.empty((b, h_q, s_q, k.shape[1]), dtype=q.dtype, device=q.device)
    rng_state = torch.empty((2,), dtype=torch.int64, device=q.device)
    return torch.empty_like(q, memory_format=torch.contiguous_format), lse, s_dmask, rng_state


@_custom_op("flash_attn::_flash_attn_varlen_forward", mutates_args=())
def _flash_attn_varlen_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    dropout_p: float,
    softmax_scale: float,
    causal: bool,
    window_size_left: int = -1,
    window_size_right: int = -1,
    softcap: float = 0.0,
    alibi_slopes: Optional[torch.Tensor] = None,
    return_softmax: bool = False,
    block_table: Optional[torch.Tensor] = None,
    leftpad_k: Optional[torch.Tensor] = None,
    seqused_k: Optional[torch.Tensor] = None,
    zero_tensors: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Varlen forward. q (total_q, h_q, d), k/v (total_k, h_k, d) or paged with block_table.
    Returns (out, softmax_lse (h_q, total_q) fp32, S_dmask or empty, rng_state int64 (2,))."""
    if block_table is not None and dropout_p > 0:
        # flash-attn's rule: a paged KV cache is for inference, where dropout has no place.
        raise InvalidArgumentError(
            f"dropout_p: must be 0 with a paged KV cache (block_table), got {dropout_p}")
    seed, offset, rng_state = _new_rng(dropout_p, q.device)
    out = torch.zeros_like(q, memory_format=torch.contiguous_format) if zero_tensors else None
    out, lse, s_dmask = ops.fwd(
        q, k, v, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k,
        max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k, seqused_k=seqused_k,
        leftpad_k=leftpad_k, block_table=block_table, alibi_slopes=alibi_slopes,
        softmax_scale=softmax_scale, causal=causal, window_left=window_size_left,
        window_right=window_size_right, softcap=softcap, dropout_p=dropout_p,
        philox_seed=seed, philox_offset=offset, return_s_dmask=return_softmax, out=out)
    return out, lse, s_dmask if return_softmax else _no_s_dmask(q), rng_state


@_register_fake(_flash_attn_varlen_forward)
def _flash_attn_varlen_forward_fake(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                    max_seqlen_k, dropout_p, softmax_scale, causal,
                                    window_size_left=-1, window_size_right=-1, softcap=0.0,
                                    alibi_slopes=None, return_softmax=False, block_table=None,
                                    leftpad_k=None, seqused_k=None, zero_tensors=False):
    total_q, h_q, _ = q.shape
    lse = torch.empty((h_q, total_q), dtype=torch.float32, device=q.device)
    s_dmask = _no_s_dmask(q)
    if return_softmax:
        s_k = max_seqlen_k
        if block_table is not None and not s_k:
            s_k = block_table.shape[-1] * k.shape[1]
        s_dmask = torch.empty((cu_seqlens_q.shape[0] - 1, h_q, max_seqlen_q, s_k),
                              dtype=q.dtype, device=q.device)
    rng_state = torch.empty((2,), dtype=torch.int64, device=q.device)
    return torch.empty_like(q, memory_format=torch.contiguous_format), lse, s_dmask, rng_state


@_custom_op("flash_attn::_flash_attn_backward", mutates_args=("dq", "dk", "dv"))
def _flash_attn_backward(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    softmax_lse: torch.Tensor,
    dq: Optional[torch.Tensor],
    dk: Optional[torch.Tensor],
    dv: Optional[torch.Tensor],
    dropout_p: float,
    softmax_scale: float,
    causal: bool,
    window_size_left: int,
    window_size_right: int,
    softcap: float,
    alibi_slopes: Optional[torch.Tensor],
    deterministic: bool,
    rng_state: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Dense backward: writes dq, dk, dv in place; returns softmax_d (b, h_q, s_q) fp32."""
    seed, offset = _stored_rng(dropout_p, rng_state)
    return ops.bwd(
        dout, q, k, v, out, softmax_lse, dq, dk, dv, alibi_slopes=alibi_slopes,
        softmax_scale=softmax_scale, causal=causal, window_left=window_size_left,
        window_right=window_size_right, softcap=softcap, dropout_p=dropout_p, philox_seed=seed,
        philox_offset=offset, deterministic=deterministic)[3]


@_register_fake(_flash_attn_backward)
def _flash_attn_backward_fake(dout, q, k, v, out, softmax_lse, dq, dk, dv, dropout_p,
                              softmax_scale, causal, window_size_left, window_size_right, softcap,
                              alibi_slopes, deterministic, rng_state=None):
    return torch.empty(softmax_lse.shape, dtype=torch.float32, device=q.device)


@_custom_op("flash_attn::_flash_attn_varlen_backward", mutates_args=("dq", "dk", "dv"))
def _flash_attn_varlen_backward(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    softmax_lse: torch.Tensor,
    dq: Optional[torch.Tensor],
    dk: Optional[torch.Tensor],
    dv: Optional[torch.Tensor],
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    dropout_p: float,
    softmax_scale: float,
    causal: bool,
    window_size_left: int,
    window_size_right: int,
    softcap: float,
    alibi_slopes: Optional[torch.Tensor],
    deterministic: bool,
    rng_state: Optional[torch.Tensor] = None,
    zero_tensors: bool = False,
) -> torch.Tensor:
    """Varlen backward: writes dq, dk, dv in place; returns softmax_d (h_q, total_q) fp32."""
    seed, offset = _stored_rng(dropout_p, rng_state)
    return ops.bwd(
        dout, q, k, v, out, softmax_lse, dq, dk, dv, cu_seqlens_q=cu_seqlens_q,
        cu_seqlens_k=cu_seqlens_k, max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k,
        alibi_slopes=alibi_slopes, softmax_scale=softmax_scale, causal=causal,
        window_left=window_size_left, window_right=window_size_right, softcap=softcap,
        dropout_p=dropout_p, philox_seed=seed, philox_offset=offset,
        deterministic=deterministic)[3]


@_register_fake(_flash_attn_varlen_backward)
def _flash_attn_varlen_backward_fake(dout, q, k, v, out, softmax_lse, dq, dk, dv, cu_seqlens_q,
                                     cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p,
                                     softmax_scale, causal, window_size_left, window_size_right,
                                     softcap, alibi_slopes, deterministic, rng_state=None,
                                     zero_tensors=False):
    return torch.empty(softmax_lse.shape, dtype=torch.float32, device=q.device)


_wrapped_flash_attn_forward = _op_handle(_flash_attn_forward, "flash_attn", "_flash_attn_forward")
_wrapped_flash_attn_varlen_forward = _op_handle(
    _flash_attn_varlen_forward, "flash_attn", "_flash_attn_varlen_forward")
_wrapped_flash_attn_backward = _op_handle(_flash_attn_backward, "flash_attn", "_flash_attn_backward")
_wrapped_flash_attn_varlen_backward = _op_handle(
    _flash_attn_varlen_backward, "flash_attn", "_flash_attn_varlen_backward")
