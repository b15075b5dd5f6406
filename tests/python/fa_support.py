"""Shared helpers of the flash_attn tests: devices (CUDA ones skip without a GPU), dtypes,
random inputs. (Not in conftest.py: tests/python/ring has its own conftest, and `from conftest
import` would resolve to whichever was imported first.)"""
import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")

DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]
# (device, dtype) pairs each backend supports; fp32 is CPU-only.
DEVICE_DTYPES = [
    ("cpu", torch.float32), ("cpu", torch.bfloat16), ("cpu", torch.float16),
    pytest.param("cuda", torch.float16, marks=requires_cuda),
    pytest.param("cuda", torch.bfloat16, marks=requires_cuda),
]


def dtype_id(value):
    return str(value).replace("torch.", "") if isinstance(value, torch.dtype) else None


def rand(*shape, device="cpu", dtype=torch.float32, requires_grad=False, scale=1.0):
    """Fresh random values (never zeros), generated on the CPU so every device sees the same."""
    t = (torch.randn(*shape) * scale).to(device=device, dtype=dtype)
    return t.requires_grad_(requires_grad)


def cu_seqlens(lengths, device="cpu"):
    values = [0]
    for n in lengths:
        values.append(values[-1] + n)
    return torch.tensor(values, dtype=torch.int32, device=device)
