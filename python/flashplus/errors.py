"""Exceptions raised for flashplus_status codes.

Each class derives from the built-in exception users already catch for that kind of failure
(ValueError for a bad argument, NotImplementedError for an unsupported variant, torch's
OutOfMemoryError for OOM), and every one is also a RuntimeError, as flash-attn's errors were.
"""
import torch

from . import _lib


class FlashplusError(RuntimeError):
    status = _lib.STATUS_INTERNAL_ERROR


class InvalidArgumentError(FlashplusError, ValueError):
    status = _lib.STATUS_INVALID_ARGUMENT


class UnsupportedError(FlashplusError, NotImplementedError):
    status = _lib.STATUS_UNSUPPORTED


class NotCompiledError(FlashplusError):
    status = _lib.STATUS_NOT_COMPILED


class DeviceError(FlashplusError):
    status = _lib.STATUS_DEVICE_ERROR


_TorchOOM = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError


class OutOfMemoryError(FlashplusError, _TorchOOM):
    status = _lib.STATUS_OUT_OF_MEMORY


_BY_STATUS = {
    cls.status: cls
    for cls in (InvalidArgumentError, UnsupportedError, NotCompiledError, DeviceError,
                OutOfMemoryError, FlashplusError)
}


def error_for_status(status: int, message: str) -> FlashplusError:
    return _BY_STATUS.get(status, FlashplusError)(message)
