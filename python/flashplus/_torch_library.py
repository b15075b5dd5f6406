"""torch.library registration: helpers, and flashplus's own custom ops.

Custom ops make the ctypes calls opaque to torch.compile (which traces the fake implementation
instead) and let CUDA graphs capture them like any other op. flash_attn/_custom_ops.py registers
flash-attn's private ops with the same helpers.
"""
import inspect
from typing import List, Optional, Tuple

import torch

from . import ops

_HAS_CUSTOM_OP = hasattr(torch.library, "custom_op") and hasattr(torch.library, "register_fake")


# Registered op handle (torch.ops.<ns>.<name>) -> (the Python function it runs, whether the op
# declares mutated arguments).
_IMPLEMENTATIONS = {}

_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)


def custom_op(name, mutates_args):
    """torch.library.custom_op, keeping inspect.signature() of the result equal to the function's."""
    def wrap(fn):
        if not _HAS_CUSTOM_OP:
            return fn
        op = torch.library.custom_op(name, mutates_args=mutates_args)(fn)
        op.__signature__ = inspect.signature(fn)
        op.__doc__ = fn.__doc__
        op.__name__ = fn.__name__
        namespace, op_name = name.split("::")
        _IMPLEMENTATIONS[getattr(getattr(torch.ops, namespace), op_name)] = (fn, bool(mutates_args))
        return op
    return wrap


def eager(handle, mutates_nothing: bool = False):
    """What to call for `handle` (a registered op, or whatever a tool patched in its place).

    Outside torch.compile a registered op is swapped for its Python implementation when the call
    mutates nothing (an op without mutated arguments, or a caller that knows this call writes none
    of them, as a KV-cache step without new keys): the dispatcher's path (autograd redispatch,
    the custom-op wrapper, a dynamo-disable frame) costs microseconds per call, a visible share of
    a decode step or a short sequence, and gives an eager caller nothing. Under torch.compile (and
    on torch without torch.compiler.is_compiling) the op itself is called, so tracing sees the
    opaque op."""
    if _is_compiling is None or _is_compiling():
        return handle
    fn, mutates = _IMPLEMENTATIONS.get(handle, (handle, False))
    return handle if mutates and not mutates_nothing else fn


def register_fake(op):
    def wrap(fn):
        if _HAS_CUSTOM_OP:
            torch.library.register_fake(op)(fn)
        return fn
    return wrap


def op_handle(fn, namespace: str, name: str):
    """torch.ops.<namespace>.<name> when registered (what flash-attn's _wrapped_* names hold)."""
    try:
        return getattr(getattr(torch.ops, namespace), name)
    except AttributeError:
        return fn


@custom_op("flashplus::fwd_kvcache", mutates_args=("k_cache", "v_cache"))
def _fwd_kvcache(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    k: Optional[torch.Tensor],
    v: Optional[torch.Tensor],
    rotary_cos: Optional[torch.Tensor],
    rotary_sin: Optional[torch.Tensor],
    cache_seqlens: Optional[torch.Tensor],
    cache_batch_idx: Optional[torch.Tensor],
    cache_leftpad: Optional[torch.Tensor],
    block_table: Optional[torch.Tensor],
    alibi_slopes: Optional[torch.Tensor],
    softmax_scale: float,
    causal: bool,
    window_size_left: int,
    window_size_right: int,
    softcap: float,
    rotary_interleaved: bool,
    num_splits: int,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """KV-cache forward (flashplus_fwd_kvcache): appends k/v into the caches, then attends.
    Returns (out (b, s_q, h_q, d), softmax_lse (b, h_q, s_q) fp32)."""
    return ops.fwd_kvcache(
        q, k_cache, v_cache, k, v, rotary_cos=rotary_cos, rotary_sin=rotary_sin,
        cache_seqlens=cache_seqlens, cache_batch_idx=cache_batch_idx,
        cache_leftpad=cache_leftpad, block_table=block_table, alibi_slopes=alibi_slopes,
        softmax_scale=softmax_scale, causal=causal, window_left=window_size_left,
        window_right=window_size_right, softcap=softcap, rotary_interleaved=rotary_interleaved,
        num_splits=num_splits, return_softmax_lse=True)


@register_fake(_fwd_kvcache)
def _fwd_kvcache_fake(q, k_cache, v_cache, k, v, rotary_cos, rotary_sin, cache_seqlens,
                      cache_batch_idx, cache_leftpad, block_table, alibi_slopes, softmax_scale,
                      causal, window_size_left, window_size_right, softcap, rotary_interleaved,
                      num_splits):
    b, s_q, h_q, _ = q.shape
    lse = torch.empty((b, h_q, s_q), dtype=torch.float32, device=q.device)
    return torch.empty_like(q, memory_format=torch.contiguous_format), lse


@custom_op("flashplus::combine", mutates_args=())
def _combine(out_partials: List[torch.Tensor], lse_partials: List[torch.Tensor],
             out_dtype: Optional[torch.dtype] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """LSE-weighted merge of partial outputs (flashplus_combine); returns (out, lse)."""
    return ops.combine(out_partials, lse_partials, out_dtype=out_dtype)


@register_fake(_combine)
def _combine_fake(out_partials, lse_partials, out_dtype=None):
    first = out_partials[0]
    out = torch.empty(first.shape, dtype=out_dtype or first.dtype, device=first.device)
    return out, torch.empty(lse_partials[0].shape, dtype=torch.float32, device=first.device)


fwd_kvcache = op_handle(_fwd_kvcache, "flashplus", "fwd_kvcache")
combine = op_handle(_combine, "flashplus", "combine")
