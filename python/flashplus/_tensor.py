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

_DEVICES = {"cpu": _lib.DEVICE_CPU, "cuda": _lib.DEVICE_CUDA}

# A zero-element tensor may have data_ptr() == 0, which the ABI reads as "argument absent".
# Such a tensor is never dereferenced, so any non-null address stands in for it.
_EMPTY_STANDIN = ctypes.create_string_buffer(64)
_EMPTY_ADDRESS = (ctypes.addressof(_EMPTY_STANDIN) + 15) & ~15


def describe(t: Optional[torch.Tensor], name: str) -> _lib.Tensor:
    """The flashplus_tensor of `t`; a zeroed one (absent optional argument) for None."""
    desc = _lib.Tensor()
    if t is None:
        return desc
    if not isinstance(t, torch.Tensor):
        raise InvalidArgumentError(f"{name}: expected a torch.Tensor or None, got {type(t).__name__}")
    dtype = _DTYPES.get(t.dtype)
    if dtype is None:
        raise InvalidArgumentError(
            f"{name}: dtype {t.dtype} is not supported (float16 and bfloat16; float32 on CPU; "
            "int32 for index tensors)"
        )
    device_type = _DEVICES.get(t.device.type)
    if device_type is None:
        raise InvalidArgumentError(f"{name}: device {t.device} is not supported (cpu or cuda)")
    if not 1 <= t.dim() <= _lib.MAX_DIMS:
        raise InvalidArgumentError(
            f"{name}: expected 1 to {_lib.MAX_DIMS} dimensions, got {t.dim()} (shape {tuple(t.shape)})"
        )
    if t.layout != torch.strided:
        raise InvalidArgumentError(f"{name}: layout {t.layout} is not supported (dense tensors only)")
    data = t.data_ptr()
    desc.data = data if data or t.numel() else _EMPTY_ADDRESS
    desc.dtype = dtype
    desc.device_type = device_type
    desc.device_index = t.device.index or 0
    desc.ndim = t.dim()
    for i, (size, stride) in enumerate(zip(t.shape, t.stride())):
        desc.sizes[i] = size
        desc.strides[i] = stride
    # A size-1 last dimension has no meaningful stride; torch may report any value there.
    if t.shape[-1] == 1:
        desc.strides[t.dim() - 1] = 1
    return desc


def stream_of(t: torch.Tensor):
    """The current CUDA stream of t's device as a void*, None (default stream / CPU) otherwise."""
    if t.device.type != "cuda":
        return None
    return torch.cuda.current_stream(t.device).cuda_stream or None
