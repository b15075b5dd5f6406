"""flashplus: FlashAttention in C++/CUDA behind a stable C ABI.

`import flash_attn` gives the flash-attn 2.8 drop-in API; this package holds the native extras:
`flashplus.ops` (thin wrappers of the C entry points, including combine), build information,
and the command line (`python -m flashplus doctor`).
"""
import json
from typing import Any, Dict

from . import _lib, ops
from .errors import (DeviceError, FlashplusError, InvalidArgumentError, NotCompiledError,
                     OutOfMemoryError, UnsupportedError)

__version__ = "0.1.0"

__all__ = [
    "__version__", "build_info", "library_version", "ops", "FlashplusError",
    "InvalidArgumentError", "UnsupportedError", "NotCompiledError", "DeviceError",
    "OutOfMemoryError", "take_index_errors", "check_index_errors",
]

# FLASHPLUS_INDEX_ERROR_* bits of include/flashplus/flashplus.h, by the argument they name.
INDEX_ERROR_BITS = {
    0x1: "cu_seqlens_q (decreasing, negative or past total_q)",
    0x2: "cu_seqlens_k (decreasing, negative or past the keys)",
    0x4: "seqused_k / cache_seqlens (outside the rows of the sequence or cache)",
    0x8: "leftpad_k / cache_leftpad (outside [0, end of the keys])",
    0x10: "cache_batch_idx (outside [0, k_cache.size(0)))",
    0x20: "block_table (a page outside [0, num_blocks))",
    0x40: "max_seqlen_q / max_seqlen_k (a sequence is longer)",
}


def take_index_errors(device: int = 0) -> list:
    """Index tensors on CUDA are checked by the kernels where they are used (validation cannot read
    device memory without a synchronisation). Waits for the device, then returns the arguments
    that held a bad entry since the last call (and clears the record): [] when all were valid.
    Calls with a bad entry leave NaN where the affected outputs are known."""
    import ctypes

    from .errors import error_for_status
    flags = ctypes.c_uint32(0)
    status = _lib.load().flashplus_take_index_errors(int(device), ctypes.byref(flags))
    if status != _lib.STATUS_OK:
        raise error_for_status(status, f"flashplus: {_lib.last_error() or _lib.status_name(status)}")
    return [name for bit, name in INDEX_ERROR_BITS.items() if flags.value & bit]


def check_index_errors(device: int = 0) -> None:
    """take_index_errors, raising InvalidArgumentError naming the arguments when any was bad."""
    bad = take_index_errors(device)
    if bad:
        raise InvalidArgumentError("flashplus: bad index contents on CUDA device "
                                   f"{device} since the last check: " + "; ".join(bad))


def build_info() -> Dict[str, Any]:
    """What the loaded library was built with (flashplus_build_info_json, parsed)."""
    return json.loads(_lib.build_info_json())


def library_version() -> str:
    return _lib.version()
