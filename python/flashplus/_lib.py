"""ctypes mirror of include/flashplus/flashplus.h and the loader of libflashplus.so.

Why ctypes: the compiled library links neither torch nor libpython, so the same binary serves
every CPython >= 3.9 and every torch >= 2.4. The structs below must match the header field for
field (ctypes applies the C alignment rules, so matching order and types is enough); `load()`
checks that by letting the library's own *_args_init() report sizeof() of each struct.
"""
import ctypes
import os
import threading
from typing import Optional

MAX_DIMS = 6
ABI_VERSION = 1

# flashplus_status
STATUS_OK = 0
STATUS_INVALID_ARGUMENT = 1
STATUS_UNSUPPORTED = 2
STATUS_NOT_COMPILED = 3
STATUS_DEVICE_ERROR = 4
STATUS_OUT_OF_MEMORY = 5
STATUS_INTERNAL_ERROR = 6

# flashplus_dtype
DTYPE_FLOAT16 = 0
DTYPE_BFLOAT16 = 1
DTYPE_FLOAT32 = 2
DTYPE_INT32 = 3

# flashplus_device_type
DEVICE_CPU = 0
DEVICE_CUDA = 1

FLAG_DRY_RUN = 1 << 0

_c_int32 = ctypes.c_int32
_c_uint32 = ctypes.c_uint32
_c_uint64 = ctypes.c_uint64
_c_float = ctypes.c_float
_c_void_p = ctypes.c_void_p


class Tensor(ctypes.Structure):
    _fields_ = [
        ("data", _c_void_p),
        ("dtype", _c_int32),
        ("device_type", _c_int32),
        ("device_index", _c_int32),
        ("ndim", _c_int32),
        ("sizes", ctypes.c_int64 * MAX_DIMS),
        ("strides", ctypes.c_int64 * MAX_DIMS),
    ]


class FwdArgs(ctypes.Structure):
    _fields_ = [
        ("struct_size", _c_uint32),
        ("flags", _c_uint32),
        ("q", Tensor),
        ("k", Tensor),
        ("v", Tensor),
        ("out", Tensor),
        ("softmax_lse", Tensor),
        ("s_dmask", Tensor),
        ("cu_seqlens_q", Tensor),
        ("cu_seqlens_k", Tensor),
        ("seqused_k", Tensor),
        ("leftpad_k", Tensor),
        ("block_table", Tensor),
        ("alibi_slopes", Tensor),
        ("max_seqlen_q", _c_int32),
        ("max_seqlen_k", _c_int32),
        ("softmax_scale", _c_float),
        ("softcap", _c_float),
        ("is_causal", _c_int32),
        ("window_left", _c_int32),
        ("window_right", _c_int32),
        ("dropout_p", _c_float),
        ("philox_seed", _c_uint64),
        ("philox_offset", _c_uint64),
        ("num_splits", _c_int32),
        ("stream", _c_void_p),
    ]


class BwdArgs(ctypes.Structure):
    _fields_ = [
        ("struct_size", _c_uint32),
        ("flags", _c_uint32),
        ("dout", Tensor),
        ("q", Tensor),
        ("k", Tensor),
        ("v", Tensor),
        ("out", Tensor),
        ("softmax_lse", Tensor),
        ("dq", Tensor),
        ("dk", Tensor),
        ("dv", Tensor),
        ("softmax_d", Tensor),
        ("cu_seqlens_q", Tensor),
        ("cu_seqlens_k", Tensor),
        ("alibi_slopes", Tensor),
        ("max_seqlen_q", _c_int32),
        ("max_seqlen_k", _c_int32),
        ("softmax_scale", _c_float),
        ("softcap", _c_float),
        ("is_causal", _c_int32),
        ("window_left", _c_int32),
        ("window_right", _c_int32),
        ("dropout_p", _c_float),
        ("philox_seed", _c_uint64),
        ("philox_offset", _c_uint64),
        ("deterministic", _c_int32),
        ("stream", _c_void_p),
    ]


class KvcacheArgs(ctypes.Structure):
    _fields_ = [
        ("struct_size", _c_uint32),
        ("flags", _c_uint32),
        ("q", Tensor),
        ("k_cache", Tensor),
        ("v_cache", Tensor),
        ("k_new", Tensor),
        ("v_new", Tensor),
        ("rotary_cos", Tensor),
        ("rotary_sin", Tensor),
        ("cache_seqlens", Tensor),
        ("cache_batch_idx", Tensor),
        ("cache_leftpad", Tensor),
        ("block_table", Tensor),
        ("alibi_slopes", Tensor),
        ("out", Tensor),
        ("softmax_lse", Tensor),
        ("softmax_scale", _c_float),
        ("softcap", _c_float),
        ("is_causal", _c_int32),
        ("window_left", _c_int32),
        ("window_right", _c_int32),
        ("rotary_interleaved", _c_int32),
        ("num_splits", _c_int32),
        ("stream", _c_void_p),
    ]


class CombineArgs(ctypes.Structure):
    _fields_ = [
        ("struct_size", _c_uint32),
        ("flags", _c_uint32),
        ("num_partials", _c_int32),
        ("out_partials", ctypes.POINTER(Tensor)),
        ("lse_partials", ctypes.POINTER(Tensor)),
        ("out", Tensor),
        ("lse", Tensor),
        ("stream", _c_void_p),
    ]


_SIGNATURES = {
    "flashplus_fwd": (_c_int32, [ctypes.POINTER(FwdArgs)]),
    "flashplus_bwd": (_c_int32, [ctypes.POINTER(BwdArgs)]),
    "flashplus_fwd_kvcache": (_c_int32, [ctypes.POINTER(KvcacheArgs)]),
    "flashplus_combine": (_c_int32, [ctypes.POINTER(CombineArgs)]),
    "flashplus_fwd_args_init": (None, [ctypes.POINTER(FwdArgs)]),
    "flashplus_bwd_args_init": (None, [ctypes.POINTER(BwdArgs)]),
    "flashplus_kvcache_args_init": (None, [ctypes.POINTER(KvcacheArgs)]),
    "flashplus_combine_args_init": (None, [ctypes.POINTER(CombineArgs)]),
    "flashplus_last_error": (ctypes.c_char_p, []),
    "flashplus_take_index_errors": (_c_int32, [_c_int32, ctypes.POINTER(_c_uint32)]),
    "flashplus_status_name": (ctypes.c_char_p, [_c_int32]),
    "flashplus_version": (ctypes.c_char_p, []),
    "flashplus_abi_version": (_c_uint32, []),
    "flashplus_build_info_json": (ctypes.c_char_p, []),
    "flashplus_backend_status": (_c_int32, [_c_int32, _c_int32]),
}

_STRUCT_INITS = {
    FwdArgs: "flashplus_fwd_args_init",
    BwdArgs: "flashplus_bwd_args_init",
    KvcacheArgs: "flashplus_kvcache_args_init",
    CombineArgs: "flashplus_combine_args_init",
}

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None


class LibraryNotFound(ImportError):
    pass


def library_path() -> str:
    """Where libflashplus.so is loaded from: $FLASHPLUS_LIBRARY, else the wheel's flashplus/lib/."""
    override = os.environ.get("FLASHPLUS_LIBRARY")
    if override:
        return override
    return os.path.join(_PACKAGE_DIR, "lib", "libflashplus.so")


def _check_struct_sizes(lib: ctypes.CDLL) -> None:
    # The init helpers write sizeof(C struct) into struct_size; a mismatch means this file and the
    # header disagree. The buffer is oversized so a larger C struct cannot overrun it.
    for struct, init_name in _STRUCT_INITS.items():
        buf = ctypes.create_string_buffer(ctypes.sizeof(struct) + 1024)
        getattr(lib, init_name)(ctypes.cast(buf, ctypes.POINTER(struct)))
        c_size = ctypes.c_uint32.from_buffer(buf).value
        if c_size != ctypes.sizeof(struct):
            raise ImportError(
                f"flashplus: {struct.__name__} is {ctypes.sizeof(struct)} bytes in Python but "
                f"{c_size} in the library; python/flashplus/_lib.py is out of sync with flashplus.h"
            )


def load() -> ctypes.CDLL:
    """The loaded library (loaded once, on first use). Raises LibraryNotFound with a fix."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        path = library_path()
        if not os.path.exists(path):
            raise LibraryNotFound(
                f"flashplus: compiled library not found at {path}. Install the package with "
                "`pip install .` from the repository root (or set FLASHPLUS_LIBRARY to a built "
                "libflashplus.so)."
            )
        lib = ctypes.CDLL(path)
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        abi = lib.flashplus_abi_version()
        if abi != ABI_VERSION:
            raise ImportError(
                f"flashplus: {path} has C ABI version {abi}, this Python package needs {ABI_VERSION}"
            )
        _check_struct_sizes(lib)
        _lib = lib
        return lib


def is_available() -> bool:
    try:
        load()
        return True
    except ImportError:
        return False


def new_args(struct):
    """A struct of the given args type, initialised (defaults, struct_size) by the library."""
    args = struct()
    getattr(load(), _STRUCT_INITS[struct])(ctypes.byref(args))
    return args


def last_error() -> str:
    return load().flashplus_last_error().decode("utf-8", "replace")


def status_name(status: int) -> str:
    return load().flashplus_status_name(status).decode("utf-8", "replace")


def version() -> str:
    return load().flashplus_version().decode()


def build_info_json() -> str:
    return load().flashplus_build_info_json().decode()
