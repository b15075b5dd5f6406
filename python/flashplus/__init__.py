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
    "OutOfMemoryError",
]


def build_info() -> Dict[str, Any]:
    """What the loaded library was built with (flashplus_build_info_json, parsed)."""
    return json.loads(_lib.build_info_json())


def library_version() -> str:
    return _lib.version()
