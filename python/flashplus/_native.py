"""Calls into libflashplus: fill an args struct, call, turn a failure status into an exception.

Every tensor crosses as a flashplus_tensor (see _tensor.py); scalars are copied as-is. The
library validates every argument before doing any work, so an exception raised here means no
output was written.
"""
import ctypes
import json

import torch

from . import _lib
from ._tensor import describe, fill, stream_of
from .errors import error_for_status

_BUILD_HINT_STATUSES = (_lib.STATUS_UNSUPPORTED, _lib.STATUS_NOT_COMPILED)


def _wants_build_hint(status: int, message: str) -> bool:
    # A GPU the build has no kernels for (e.g. sm75) is reported as a device error.
    return status in _BUILD_HINT_STATUSES or (
        status == _lib.STATUS_DEVICE_ERROR and "compute capability" in message)


def build_hint() -> str:
    """What this build compiled for CUDA and how to build for something else."""
    try:
        info = json.loads(_lib.build_info_json())
    except ValueError:
        info = {}
    cuda = info.get("backends", {}).get("cuda", {})
    if not cuda.get("compiled"):
        have = "this build has no CUDA backend (nvcc was not found when it was built)"
    else:
        have = (f"this build ({info.get('preset')} preset) has CUDA kernels for archs "
                f"{cuda.get('archs')}, head dims up to {cuda.get('max_head_dim')} "
                f"{cuda.get('head_dims')}, dtypes {cuda.get('dtypes')}, backward "
                f"{'yes' if cuda.get('backward') else 'no'}")
    return (f"{have}. To build for another GPU or configuration, reinstall from source with "
            "nvcc on PATH, e.g. `pip install . -C cmake.define.FLASHPLUS_PRESET=full "
            "-C cmake.define.FLASHPLUS_CUDA_ARCHITECTURES=90` (sm80 and newer); "
            "`python -m flashplus doctor` shows what is compiled; CPU tensors always run on the "
            "CPU backend")


def _call(fn_name: str, args, device_tensor: torch.Tensor) -> None:
    # No torch.cuda.device guard: the library makes the tensors' device current for the call
    # itself (and restores the caller's), and the stream comes from stream_of(tensor's device).
    status = getattr(_lib.load(), fn_name)(ctypes.byref(args))
    if status != _lib.STATUS_OK:
        message = _lib.last_error() or _lib.status_name(status)
        if device_tensor.device.type == "cuda" and _wants_build_hint(status, message):
            message = f"{message}; {build_hint()}"
        raise error_for_status(status, f"flashplus: {message}")


def _set_tensors(args, **tensors) -> None:
    # Absent arguments stay as the library's init left them (all zero: "not given").
    for name, t in tensors.items():
        if t is not None:
            fill(getattr(args, name), t, name)


def _set_scalars(args, **values) -> None:
    """Copies scalar arguments by field name; bools become the ABI's int32 flags."""
    for name, value in values.items():
        setattr(args, name, int(value) if isinstance(value, bool) else value)


def fwd(q, k, v, out, softmax_lse, s_dmask, *, cu_seqlens_q, cu_seqlens_k, seqused_k, leftpad_k,
        block_table, alibi_slopes, max_seqlen_q, max_seqlen_k, softmax_scale, softcap, is_causal,
        window_left, window_right, dropout_p, philox_seed, philox_offset, num_splits):
    args = _lib.new_args(_lib.FwdArgs)
    _set_tensors(args, q=q, k=k, v=v, out=out, softmax_lse=softmax_lse, s_dmask=s_dmask,
                 cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k, seqused_k=seqused_k,
                 leftpad_k=leftpad_k, block_table=block_table, alibi_slopes=alibi_slopes)
    _set_scalars(args, max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k,
                 softmax_scale=softmax_scale, softcap=softcap, is_causal=bool(is_causal),
                 window_left=window_left, window_right=window_right, dropout_p=dropout_p,
                 philox_seed=philox_seed, philox_offset=philox_offset, num_splits=num_splits)
    args.stream = stream_of(q)
    _call("flashplus_fwd", args, q)


def bwd(dout, q, k, v, out, softmax_lse, dq, dk, dv, softmax_d, *, cu_seqlens_q, cu_seqlens_k,
        alibi_slopes, max_seqlen_q, max_seqlen_k, softmax_scale, softcap, is_causal, window_left,
        window_right, dropout_p, philox_seed, philox_offset, deterministic):
    args = _lib.new_args(_lib.BwdArgs)
    _set_tensors(args, dout=dout, q=q, k=k, v=v, out=out, softmax_lse=softmax_lse, dq=dq, dk=dk,
                 dv=dv, softmax_d=softmax_d, cu_seqlens_q=cu_seqlens_q,
                 cu_seqlens_k=cu_seqlens_k, alibi_slopes=alibi_slopes)
    _set_scalars(args, max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k,
                 softmax_scale=softmax_scale, softcap=softcap, is_causal=bool(is_causal),
                 window_left=window_left, window_right=window_right, dropout_p=dropout_p,
                 philox_seed=philox_seed, philox_offset=philox_offset,
                 deterministic=bool(deterministic))
    args.stream = stream_of(q)
    _call("flashplus_bwd", args, q)


def fwd_kvcache(q, k_cache, v_cache, k_new, v_new, rotary_cos, rotary_sin, cache_seqlens,
                cache_batch_idx, cache_leftpad, block_table, alibi_slopes, out, softmax_lse, *,
                softmax_scale, softcap, is_causal, window_left, window_right, rotary_interleaved,
                num_splits):
    args = _lib.new_args(_lib.KvcacheArgs)
    _set_tensors(args, q=q, k_cache=k_cache, v_cache=v_cache, k_new=k_new, v_new=v_new,
                 rotary_cos=rotary_cos, rotary_sin=rotary_sin, cache_seqlens=cache_seqlens,
                 cache_batch_idx=cache_batch_idx, cache_leftpad=cache_leftpad,
                 block_table=block_table, alibi_slopes=alibi_slopes, out=out,
                 softmax_lse=softmax_lse)
    _set_scalars(args, softmax_scale=softmax_scale, softcap=softcap, is_causal=bool(is_causal),
                 window_left=window_left, window_right=window_right,
                 rotary_interleaved=bool(rotary_interleaved), num_splits=num_splits)
    args.stream = stream_of(q)
    _call("flashplus_fwd_kvcache", args, q)


def combine(out_partials, lse_partials, out, lse):
    n = len(out_partials)
    args = _lib.new_args(_lib.CombineArgs)
    outs = (_lib.Tensor * n)(*[describe(t, f"out_partials[{i}]") for i, t in enumerate(out_partials)])
    lses = (_lib.Tensor * n)(*[describe(t, f"lse_partials[{i}]") for i, t in enumerate(lse_partials)])
    args.num_partials = n
    args.out_partials = outs
    args.lse_partials = lses
    _set_tensors(args, out=out, lse=lse)
    args.stream = stream_of(out)
    _call("flashplus_combine", args, out)
