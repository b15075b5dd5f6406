"""The CUDA driver's default stream-ordered memory pool of a device, seen through ctypes.

libflashplus takes its scratch memory (split-KV partials, the fused backward's fp32 dQ buffer)
with cudaMallocAsync from that pool, which torch's allocator statistics do not see. The benchmark
adds the pool's high-water mark to torch's peak so that flashplus's peak memory includes its own
workspaces, as SDPA FLASH's includes the buffers torch allocates for it. Nothing here allocates.
"""
import ctypes
from typing import Optional

_USED_MEM_HIGH = 8  # CU_MEMPOOL_ATTR_USED_MEM_HIGH (cuda.h), value type cuuint64_t


class DefaultPool:
    """reset() the high-water mark, run, then peak() bytes; both are no-ops without a driver."""

    def __init__(self, device_index: int):
        self._pool: Optional[ctypes.c_void_p] = None
        try:
            self._cuda = ctypes.CDLL("libcuda.so.1")
            device = ctypes.c_int()
            pool = ctypes.c_void_p()
            if self._cuda.cuDeviceGet(ctypes.byref(device), device_index) != 0:
                return
            if self._cuda.cuDeviceGetDefaultMemPool(ctypes.byref(pool), device) != 0:
                return
            self._pool = pool
        except OSError:
            self._pool = None

    def reset(self) -> None:
        if self._pool is not None:
            zero = ctypes.c_uint64(0)
            self._cuda.cuMemPoolSetAttribute(self._pool, _USED_MEM_HIGH, ctypes.byref(zero))

    def peak(self) -> int:
        if self._pool is None:
            return 0
        value = ctypes.c_uint64(0)
        if self._cuda.cuMemPoolGetAttribute(self._pool, _USED_MEM_HIGH, ctypes.byref(value)) != 0:
            return 0
        return int(value.value)
