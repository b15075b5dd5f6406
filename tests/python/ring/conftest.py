"""Fixtures of the ring tests: one process pool per (backend, world size), shared by the session.

CPU pools use gloo with 2 and 3 processes. NCCL pools need as many GPUs as ranks and skip
otherwise; run them on a multi-GPU machine with plain pytest (the pool spawns the ranks).
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # cases.py, ring_reference.py, dist_pool.py

from dist_pool import DistPool  # noqa: E402


def _library_missing() -> str:
    try:
        from flashplus import _lib
    except ImportError as exc:
        return f"flashplus is not importable: {exc}"
    return "" if _lib.is_available() else f"libflashplus not found ({_lib.library_path()})"


_pools = {}


def _pool(backend: str, world_size: int) -> DistPool:
    reason = _library_missing()
    if reason:
        pytest.skip(reason)
    if backend == "nccl" and torch.cuda.device_count() < world_size:
        pytest.skip(f"needs {world_size} GPUs, found {torch.cuda.device_count()}")
    key = (backend, world_size)
    if key not in _pools:
        _pools[key] = DistPool(world_size, backend)
    return _pools[key]


@pytest.fixture(scope="session")
def pool_factory():
    yield _pool
    for pool in _pools.values():
        pool.close()
    _pools.clear()


@pytest.fixture(params=[2, 3], ids=lambda n: f"gloo{n}")
def cpu_pool(request, pool_factory):
    return pool_factory("gloo", request.param)


@pytest.fixture(params=[2, 4], ids=lambda n: f"nccl{n}")
def gpu_pool(request, pool_factory):
    return pool_factory("nccl", request.param)
