"""flash-attn 2.8.3's Python API, computed by flashplus.

Public functions keep flash-attn's names, parameters, defaults and return conventions:
they return `out`, or `(out, softmax_lse, S_dmask)` with return_attn_probs=True. As in
flash-attn, S_dmask is only filled when dropout_p > 0 (an empty tensor otherwise), so asking
for the LSE never allocates the (b, h, s_q, s_k) matrix.

Autograd goes through torch.autograd.Functions that call the private custom ops
(_flash_attn_forward, ...; see _custom_ops.py) through the module-level `_wrapped_*` names, so
code that patches those names, as some tools do, is honoured. Outside torch.compile the forward
ops' and the KV-cache op's Python implementations are called directly (_torch_library.eager: the
dispatcher costs tens of microseconds per call; the KV-cache append still bumps the caches'
version counters, as the dispatcher would).

Layouts: dense (b, s, h, d); varlen (total, h, d) with int32 cu_seqlens (b + 1);
qkv packed (b, s, 3, h, d) / (total, 3, h, d); kv packed (b, s, 2, h_k, d) / (total, 2, h_k, d).
CUDA head dims that are not a multiple of 8 are padded with zeros and sliced back (the CPU
backend takes any head dim 1..256 as is).
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

from flashplus import _torch_library
from flashplus.errors import InvalidArgumentError

from ._custom_ops import (  # noqa: F401  (re-exported: tools import them from here)
    _flash_attn_backward,
    _flash_attn_forward,
    _flash_attn_varlen_backward,
    _flash_attn_varlen_forward,
    _wrapped_flash_attn_backward,
    _wrapped_flash_attn_forward,
    _wrapped_flash_attn_varlen_backward,
    _wrapped_flash_attn_varlen_forward,
)

__all__ = [
    "_flash_attn_backward", "_flash_attn_forward", "_flash_attn_varlen_backward",
    "_flash_attn_varlen_forward", "flash_attn_func", "flash_attn_kvpacked_func", "flash_attn_qkvpacked_func",
    "flash_attn_varlen_func", "flash_attn_varlen_kvpacked_func",
    "flash_attn_varlen_qkvpacked_func", "flash_attn_with_kvcache",
]


def maybe_contiguous(x):
    return x.contiguous() if x is not None and x.stride(-1) != 1 else x


def _distinct(*tensors):
    """The same tensor passed twice (q is k, cu_seqlens_q is cu_seqlens_k) becomes a view:
    torch.compile cannot trace an autograd.Function given one tensor as two inputs, and
    autograd still sums both gradients into the original. (`is`, not id(): Dynamo traces the
    former on every torch version we support.)"""
    result = []
    for t in tensors:
        if isinstance(t, torch.Tensor):
            for earlier in result:
                if t is earlier:
                    t = t.view_as(t)
                    break
        result.append(t)
    return result


def _window(window_size) -> Tuple[int, int]:
    if not isinstance(window_size, (tuple, list)) or len(window_size) != 2:
        raise InvalidArgumentError(
            f"window_size: expected a pair (left, right) of ints, -1 for unbounded; got {window_size!r}")
    return int(window_size[0]), int(window_size[1])


def _seqlen(value, name: str) -> int:
    """max_seqlen_* may be an int or a one-element tensor (as some callers pass it)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise InvalidArgumentError(f"{name}: expected an int or a 0-d tensor, got shape "
                                       f"{tuple(value.shape)}")
        return int(value.item())
    return int(value)


def _pad_amount(q: torch.Tensor) -> int:
    """Zero columns to append to the head dim: CUDA kernels take multiples of 8 only."""
    d = q.shape[-1]
    return (-d) % 8 if q.is_cuda else 0


def _pad(pad: int, *tensors):
    if not pad:
        return tensors
    return tuple(F.pad(t, [0, pad]) for t in tensors)


def _default_scale(softmax_scale, q: torch.Tensor) -> float:
    return q.shape[-1] ** (-0.5) if softmax_scale is None else softmax_scale


def _result(out, softmax_lse, s_dmask, return_softmax):
    return (out, softmax_lse, s_dmask) if return_softmax else out


def _save_options(ctx, dropout_p, softmax_scale, causal, window, softcap, alibi_slopes,
                  deterministic):
    """Options the backward needs again, kept on ctx by the autograd Functions."""
    ctx.dropout_p = dropout_p
    ctx.softmax_scale = softmax_scale
    ctx.causal = causal
    ctx.window_size = window
    ctx.softcap = softcap
    ctx.alibi_slopes = alibi_slopes
    ctx.deterministic = deterministic


def _dense_forward(ctx, q, k, v, dropout_p, softmax_scale, causal, window_size, softcap,
                   alibi_slopes, deterministic, return_softmax):
    softmax_scale = _default_scale(softmax_scale, q)
    window = _window(window_size)
    d = q.shape[-1]
    pad = _pad_amount(q)
    q, k, v = _pad(pad, q, k, v)
    out, lse, s_dmask, rng_state = _torch_library.eager(_wrapped_flash_attn_forward)(
        q, k, v, dropout_p, softmax_scale, causal=causal, window_size_left=window[0],
        window_size_right=window[1], softcap=softcap, alibi_slopes=alibi_slopes,
        return_softmax=return_softmax and dropout_p > 0)
    ctx.save_for_backward(q, k, v, out, lse, rng_state)
    _save_options(ctx, dropout_p, softmax_scale, causal, window, softcap, alibi_slopes,
                  deterministic)
    ctx.pad = pad
    return _result(out[..., :d], lse, s_dmask, return_softmax)


def _dense_backward(ctx, dout, dq, dk, dv):
    q, k, v, out, lse, rng_state = ctx.saved_tensors
    (dout,) = _pad(ctx.pad, dout)
    _wrapped_flash_attn_backward(
        dout, q, k, v, out, lse, dq, dk, dv, ctx.dropout_p, ctx.softmax_scale, ctx.causal,
        ctx.window_size[0], ctx.window_size[1], ctx.softcap, ctx.alibi_slopes, ctx.deterministic,
        rng_state=rng_state)


def _varlen_forward(ctx, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                    dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes,
                    deterministic, return_softmax, block_table):
    softmax_scale = _default_scale(softmax_scale, q)
    window = _window(window_size)
    max_seqlen_q = _seqlen(max_seqlen_q, "max_seqlen_q")
    max_seqlen_k = _seqlen(max_seqlen_k, "max_seqlen_k")
    d = q.shape[-1]
    pad = _pad_amount(q)
    q, k, v = _pad(pad, q, k, v)
    out, lse, s_dmask, rng_state = _torch_library.eager(_wrapped_flash_attn_varlen_forward)(
        q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p,
        softmax_scale, causal=causal, window_size_left=window[0], window_size_right=window[1],
        softcap=softcap, alibi_slopes=alibi_slopes,
        return_softmax=return_softmax and dropout_p > 0, block_table=block_table)
    ctx.save_for_backward(q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, rng_state)
    _save_options(ctx, dropout_p, softmax_scale, causal, window, softcap, alibi_slopes,
                  deterministic)
    ctx.max_seqlen_q, ctx.max_seqlen_k, ctx.pad = max_seqlen_q, max_seqlen_k, pad
    return _result(out[..., :d], lse, s_dmask, return_softmax)


def _varlen_backward(ctx, dout, dq, dk, dv):
    q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, rng_state = ctx.saved_tensors
    (dout,) = _pad(ctx.pad, dout)
    _wrapped_flash_attn_varlen_backward(
        dout, q, k, v, out, lse, dq, dk, dv, cu_seqlens_q, cu_seqlens_k, ctx.max_seqlen_q,
        ctx.max_seqlen_k, ctx.dropout_p, ctx.softmax_scale, ctx.causal, ctx.window_size[0],
        ctx.window_size[1], ctx.softcap, ctx.alibi_slopes, ctx.deterministic,
        rng_state=rng_state)


def _unpad_grad(grad: torch.Tensor, d: int) -> torch.Tensor:
    return grad[..., :d] if grad.shape[-1] != d else grad


class FlashAttnFunc(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, dropout_p, softmax_scale, causal, window_size, softcap,
                alibi_slopes, deterministic, return_softmax):
        return _dense_forward(ctx, q, k, v, dropout_p, softmax_scale, causal, window_size,
                              softcap, alibi_slopes, deterministic, return_softmax)

    @staticmethod
    def backward(ctx, dout, *args):
        q, k, v = ctx.saved_tensors[:3]
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        _dense_backward(ctx, dout, dq, dk, dv)
        d = dout.shape[-1]
        return (_unpad_grad(dq, d), _unpad_grad(dk, d), _unpad_grad(dv, d)) + (None,) * 8


class FlashAttnQKVPackedFunc(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv, dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes,
                deterministic, return_softmax):
        q, k, v = qkv[:, :, 0].detach(), qkv[:, :, 1].detach(), qkv[:, :, 2].detach()
        return _dense_forward(ctx, q, k, v, dropout_p, softmax_scale, causal, window_size,
                              softcap, alibi_slopes, deterministic, return_softmax)

    @staticmethod
    def backward(ctx, dout, *args):
        q = ctx.saved_tensors[0]
        dqkv = torch.empty(q.shape[:-2] + (3,) + q.shape[-2:], dtype=q.dtype, device=q.device)
        _dense_backward(ctx, dout, dqkv[:, :, 0], dqkv[:, :, 1], dqkv[:, :, 2])
        return (_unpad_grad(dqkv, dout.shape[-1]),) + (None,) * 8


class FlashAttnKVPackedFunc(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, kv, dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes,
                deterministic, return_softmax):
        k, v = kv[:, :, 0].detach(), kv[:, :, 1].detach()
        return _dense_forward(ctx, q, k, v, dropout_p, softmax_scale, causal, window_size,
                              softcap, alibi_slopes, deterministic, return_softmax)

    @staticmethod
    def backward(ctx, dout, *args):
        q, k = ctx.saved_tensors[:2]
        dq = torch.empty_like(q)
        dkv = torch.empty(k.shape[:-2] + (2,) + k.shape[-2:], dtype=k.dtype, device=k.device)
        _dense_backward(ctx, dout, dq, dkv[:, :, 0], dkv[:, :, 1])
        d = dout.shape[-1]
        return (_unpad_grad(dq, d), _unpad_grad(dkv, d)) + (None,) * 8


class FlashAttnVarlenFunc(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p,
                softmax_scale, causal, window_size, softcap, alibi_slopes, deterministic,
                return_softmax, block_table):
        return _varlen_forward(ctx, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                               max_seqlen_k, dropout_p, softmax_scale, causal, window_size,
                               softcap, alibi_slopes, deterministic, return_softmax, block_table)

    @staticmethod
    def backward(ctx, dout, *args):
        q, k, v = ctx.saved_tensors[:3]
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        _varlen_backward(ctx, dout, dq, dk, dv)
        d = dout.shape[-1]
        return (_unpad_grad(dq, d), _unpad_grad(dk, d), _unpad_grad(dv, d)) + (None,) * 13


class FlashAttnVarlenQKVPackedFunc(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv, cu_seqlens, max_seqlen, dropout_p, softmax_scale, causal, window_size,
                softcap, alibi_slopes, deterministic, return_softmax):
        q, k, v = qkv[:, 0].detach(), qkv[:, 1].detach(), qkv[:, 2].detach()
        return _varlen_forward(ctx, q, k, v, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen,
                               dropout_p, softmax_scale, causal, window_size, softcap,
                               alibi_slopes, deterministic, return_softmax, None)

    @staticmethod
    def backward(ctx, dout, *args):
        q = ctx.saved_tensors[0]
        dqkv = torch.empty(q.shape[:-2] + (3,) + q.shape[-2:], dtype=q.dtype, device=q.device)
        _varlen_backward(ctx, dout, dqkv[:, 0], dqkv[:, 1], dqkv[:, 2])
        return (_unpad_grad(dqkv, dout.shape[-1]),) + (None,) * 10


class FlashAttnVarlenKVPackedFunc(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, kv, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p,
                softmax_scale, causal, window_size, softcap, alibi_slopes, deterministic,
                return_softmax):
        k, v = kv[:, 0].detach(), kv[:, 1].detach()
        return _varlen_forward(ctx, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                               max_seqlen_k, dropout_p, softmax_scale, causal, window_size,
                               softcap, alibi_slopes, deterministic, return_softmax, None)

    @staticmethod
    def backward(ctx, dout, *args):
        q, k = ctx.saved_tensors[:2]
        dq = torch.empty_like(q)
        dkv = torch.empty(k.shape[:-2] + (2,) + k.shape[-2:], dtype=k.dtype, device=k.device)
        _varlen_backward(ctx, dout, dq, dkv[:, 0], dkv[:, 1])
        d = dout.shape[-1]
        return (_unpad_grad(dq, d), _unpad_grad(dkv, d)) + (None,) * 12


def flash_attn_qkvpacked_func(
    qkv,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    deterministic=False,
    return_attn_probs=False,
):
    """Attention over packed qkv (b, s, 3, h, d); see flash_attn_func for the options.
    Returns out (b, s, h, d), or (out, softmax_lse, S_dmask) with return_attn_probs."""
    return FlashAttnQKVPackedFunc.apply(qkv, dropout_p, softmax_scale, causal, window_size,
                                        softcap, alibi_slopes, deterministic, return_attn_probs)


def flash_attn_kvpacked_func(
    q,
    kv,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    deterministic=False,
    return_attn_probs=False,
):
    """Attention of q (b, s_q, h_q, d) over packed kv (b, s_k, 2, h_k, d); see flash_attn_func."""
    q, kv = _distinct(q, kv)
    return FlashAttnKVPackedFunc.apply(q, kv, dropout_p, softmax_scale, causal, window_size,
                                       softcap, alibi_slopes, deterministic, return_attn_probs)


def flash_attn_func(
    q,
    k,
    v,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    deterministic=False,
    return_attn_probs=False,
):
    """softmax(softmax_scale * q k^T + mask) v over dense batches.

    q (b, s_q, h_q, d), k and v (b, s_k, h_k, d) with h_q % h_k == 0 (GQA/MQA: query head i uses
    key head i // (h_q // h_k)); fp16 or bf16 (also fp32 on CPU).
    causal: bottom-right aligned mask, the same as window_size (left, 0).
    window_size (left, right): query i sees keys [i + s_k - s_q - left, i + s_k - s_q + right];
    -1 means unbounded. softcap > 0: logits become softcap * tanh(logits / softcap).
    alibi_slopes (h_q,) or (b, h_q) fp32: adds -slope * |i + s_k - s_q - j| to the logits.
    dropout_p: dropout on the attention probabilities (set it to 0.0 for evaluation).
    deterministic: bit-identical gradients from run to run.
    Returns out (b, s_q, h_q, d), or with return_attn_probs (out, softmax_lse (b, h_q, s_q) fp32,
    S_dmask): the probabilities, negative where dropped (filled only when dropout_p > 0).
    A query row that sees no key gets out = 0 and softmax_lse = +inf.
    """
    q, k, v = _distinct(q, k, v)
    return FlashAttnFunc.apply(q, k, v, dropout_p, softmax_scale, causal, window_size, softcap,
                               alibi_slopes, deterministic, return_attn_probs)


def flash_attn_varlen_qkvpacked_func(
    qkv,
    cu_seqlens,
    max_seqlen,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    deterministic=False,
    return_attn_probs=False,
):
    """Varlen attention over packed qkv (total, 3, h, d); see flash_attn_varlen_func."""
    return FlashAttnVarlenQKVPackedFunc.apply(qkv, cu_seqlens, max_seqlen, dropout_p,
                                              softmax_scale, causal, window_size, softcap,
                                              alibi_slopes, deterministic, return_attn_probs)


def flash_attn_varlen_kvpacked_func(
    q,
    kv,
    cu_seqlens_q,
    cu_seqlens_k,
    max_seqlen_q,
    max_seqlen_k,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    deterministic=False,
    return_attn_probs=False,
):
    """Varlen attention of q (total_q, h_q, d) over packed kv (total_k, 2, h_k, d)."""
    q, kv, cu_seqlens_q, cu_seqlens_k = _distinct(q, kv, cu_seqlens_q, cu_seqlens_k)
    return FlashAttnVarlenKVPackedFunc.apply(q, kv, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                             max_seqlen_k, dropout_p, softmax_scale, causal,
                                             window_size, softcap, alibi_slopes, deterministic,
                                             return_attn_probs)


def flash_attn_varlen_func(
    q,
    k,
    v,
    cu_seqlens_q,
    cu_seqlens_k,
    max_seqlen_q,
    max_seqlen_k,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    alibi_slopes=None,
    deterministic=False,
    return_attn_probs=False,
    block_table=None,
):
    """Attention over variable-length sequences packed without padding.

    q (total_q, h_q, d), k and v (total_k, h_k, d); cu_seqlens_q / cu_seqlens_k int32 (b + 1)
    cumulative lengths (sequence i is rows cu[i]:cu[i + 1]); max_seqlen_q / max_seqlen_k: the
    longest sequence (int or one-element tensor). With block_table (b, max_pages) int32, k and v
    are a paged cache (num_pages, page_size, h_k, d). Masks are per sequence, as in
    flash_attn_func. Returns out (total_q, h_q, d), or with return_attn_probs
    (out, softmax_lse (h_q, total_q) fp32, S_dmask (b, h_q, max_seqlen_q, max_seqlen_k)).
    """
    q, k, v, cu_seqlens_q, cu_seqlens_k = _distinct(q, k, v, cu_seqlens_q, cu_seqlens_k)
    return FlashAttnVarlenFunc.apply(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                     max_seqlen_k, dropout_p, softmax_scale, causal, window_size,
                                     softcap, alibi_slopes, deterministic, return_attn_probs,
                                     block_table)


def flash_attn_with_kvcache(
    q,
    k_cache,
    v_cache,
    k=None,
    v=None,
    rotary_cos=None,
    rotary_sin=None,
    cache_seqlens: Optional[Union[int, torch.Tensor]] = None,
    cache_batch_idx: Optional[torch.Tensor] = None,
    cache_leftpad: Optional[torch.Tensor] = None,
    block_table: Optional[torch.Tensor] = None,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
    rotary_interleaved=True,
    alibi_slopes=None,
    num_splits=0,
    return_softmax_lse=False,
):
    """Incremental decoding / chunked prefill against a KV cache (no backward).

    q (b, s_q, h_q, d); k_cache, v_cache (b_cache, s_cache, h_k, d), or paged
    (num_pages, page_size, h_k, d) with block_table (b, max_pages) int32. If k and v
    (b, s_new, h_k, d) are given they are written into the caches in place at rows
    [cache_seqlens[i], cache_seqlens[i] + s_new) of entry cache_batch_idx[i] (or i), after
    rotary (rotary_cos / rotary_sin (s_ro, rotary_dim / 2)) on k; q is rotated too, at those
    positions if causal or windowed, else all at position cache_seqlens[i].
    cache_seqlens: int or int32 (b,); cache_leftpad: int32 (b,) first valid cache row.
    Returns out (b, s_q, h_q, d), or (out, softmax_lse (b, h_q, s_q) fp32) with
    return_softmax_lse.
    """
    window = _window(window_size)
    q, k, v = (maybe_contiguous(x) for x in (q, k, v))
    softmax_scale = _default_scale(softmax_scale, q)
    if isinstance(cache_seqlens, int):
        cache_seqlens = torch.full((q.shape[0],), cache_seqlens, dtype=torch.int32,
                                   device=k_cache.device)
    out, softmax_lse = _torch_library.eager(_torch_library.fwd_kvcache, mutates_nothing=k is None and v is None)(
        q, k_cache, v_cache, k, v, rotary_cos, rotary_sin, cache_seqlens, cache_batch_idx,
        cache_leftpad, block_table, alibi_slopes, softmax_scale, causal, window[0], window[1],
        softcap, rotary_interleaved, num_splits)
    return (out, softmax_lse) if return_softmax_lse else out
