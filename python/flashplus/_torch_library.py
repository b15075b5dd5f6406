"""torch.library registration: helpers, and flashplus's own custom ops.

Custom ops make the ctypes calls opaque to torch.compile (which traces the fake implementation
instead) and let CUDA graphs capture them like any other op. flash_attn/_custom_ops.py registers
flash-attn's private ops with the same helpers.
"""
import functools
import inspect
from typing import List, Optional, Tuple

import torch

from . import ops

_HAS_CUSTOM_OP = hasattr(torch.library, "custom_op") and hasattr(torch.library, "register_fake")


# Registered op handle (torch.ops.<ns>.<name>) -> (the Python function it runs, the positions and
# names of the arguments the op declares mutated).
_IMPLEMENTATIONS = {}

_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
_increment_version = getattr(getattr(torch.autograd, "graph", None), "increment_version", None)


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
        names = list(inspect.signature(fn).parameters)
        mutated = tuple((names.index(arg), arg) for arg in mutates_args)
        _IMPLEMENTATIONS[getattr(getattr(torch.ops, namespace), op_name)] = (fn, mutated)
        return op
    return wrap


def _call_and_mark_mutated(fn, mutated, *args, **kwargs):
    """fn(*args, **kwargs), then what the dispatcher does for a custom op's mutated arguments in
    eager mode: bump their version counters, so autograd still detects an in-place change to a
    tensor it saved. (Inference tensors have no version counter.)"""
    result = fn(*args, **kwargs)
    for position, name in mutated:
        t = args[position] if position < len(args) else kwargs.get(name)
        if isinstance(t, torch.Tensor) and not t.is_inference():
            _increment_version(t)
    return result


def eager(handle, mutates_nothing: bool = False):
    """What to call for `handle` (a registered op, or whatever a tool patched in its place).

    Outside torch.compile a registered op is swapped for its Python implementation: the
    dispatcher's path (autograd redispatch, the custom-op wrapper, a dynamo-disable frame) costs
    tens of microseconds per call, a visible share of a decode step or a short sequence, and gives
    an eager caller nothing but the version-counter bump of the arguments the op mutates, which
    the swap does itself (_call_and_mark_mutated; skipped where the caller knows this call writes
    none of them, as a KV-cache step without new keys). Under torch.compile (and on torch without
    torch.compiler.is_compiling or torch.autograd.graph.increment_version, for a mutating call)
    the op itself is called, so tracing sees the opaque op."""
    if _is_compiling is None or _is_compiling():
        return handle
    fn, mutated = _IMPLEMENTATIONS.get(handle, (handle, ()))
    if not mutated or mutates_nothing:
        return fn
    if _increment_version is None:
        return handle
    return functools.partial(_call_and_mark_mutated, fn, mutated)


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
