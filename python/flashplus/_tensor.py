"""torch.Tensor -> flashplus_tensor (pointer, sizes, strides in elements, dtype, device).

This is the only place that knows how torch lays out a tensor; everything else passes tensors.
Python-side checks here are the ones the C ABI cannot express: a dtype or device type that has
no flashplus enum value, or more dimensions than FLASHPLUS_MAX_DIMS.
"""
import ctypes
from typing import Optional

import torch

from . import _lib
from .errors import InvalidArgumentError

_DTYPES = {
    torch.float16: _lib.DTYPE_FLOAT16,
    torch.bfloat16: _lib.DTYPE_BFLOAT16,
    torch.float32: _lib.DTYPE_FLOAT32,
    torch.int32: _lib.DTYPE_INT32,
}

# A zero-element tensor may have data_ptr() == 0, which the ABI reads as "argument absent".
# Such a tensor is never dereferenced, so any non-null address stands in for it.
_EMPTY_STANDIN = ctypes.create_string_buffer(64)
_EMPTY_ADDRESS = (ctypes.addressof(_EMPTY_STANDIN) + 15) & ~15


def describe(t: Optional[torch.Tensor], name: str) -> _lib.Tensor:
    """The flashplus_tensor of `t`; a zeroed one (absent optional argument) for None."""
    desc = _lib.Tensor()
    if t is None:
        return desc
    fill(desc, t, name)
    return desc


def fill(desc: _lib.Tensor, t: torch.Tensor, name: str) -> None:
    """Writes the description of `t` into `desc` (a field of an args struct, filled in place:
    one call per tensor argument is on every attention call's path, so it avoids temporaries)."""
    if not isinstance(t, torch.Tensor):
        raise InvalidArgumentError(f"{name}: expected a torch.Tensor or None, got {type(t).__name__}")
    dtype = _DTYPES.get(t.dtype)
    if dtype is None:
        raise InvalidArgumentError(
            f"{name}: dtype {t.dtype} is not supported (float16 and bfloat16; float32 on CPU; "
            "int32 for index tensors)"
        )
    if t.is_cuda:
        desc.device_type = _lib.DEVICE_CUDA
        desc.device_index = t.get_device()
    elif t.is_cpu:
        desc.device_type = _lib.DEVICE_CPU
        desc.device_index = 0
    else:
        raise InvalidArgumentError(f"{name}: device {t.device} is not supported (cpu or cuda)")
    shape = t.shape
    ndim = len(shape)
    if not 1 <= ndim <= _lib.MAX_DIMS:
        raise InvalidArgumentError(
            f"{name}: expected 1 to {_lib.MAX_DIMS} dimensions, got {ndim} (shape {tuple(shape)})"
        )
    if t.layout != torch.strided:
        raise InvalidArgumentError(f"{name}: layout {t.layout} is not supported (dense tensors only)")
    data = t.data_ptr()
    desc.data = data if data or t.numel() else _EMPTY_ADDRESS
    desc.dtype = dtype
    desc.ndim = ndim
    desc.sizes[:ndim] = shape
    strides = t.stride()
    # A size-1 last dimension has no meaningful stride; torch may report any value there.
    desc.strides[:ndim] = strides if shape[-1] != 1 else strides[:-1] + (1,)


# The raw current-stream pointer without building a torch.cuda.Stream object (a private torch
# function that inductor's generated code also uses; the public path is the fallback).
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)


def stream_of(t: torch.Tensor):
    """The current CUDA stream of t's device as a void*, None (default stream / CPU) otherwise."""
    if not t.is_cuda:
        return None
    if _raw_stream is not None:
        return _raw_stream(t.get_device()) or None
    return torch.cuda.current_stream(t.device).cuda_stream or None
