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


_CUDA_DTYPE_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16"}


def require_build(device, dtype, head_dim, backward=False):
    """Skip a CUDA case this build did not compile (build_info), e.g. fp16 or the backward in the
    `dev` preset. Anything the build claims to have runs, and must pass."""
    if device != "cuda":
        return
    import flashplus

    head_dim = -(-head_dim // 8) * 8  # the Python layer pads CUDA head dims to a multiple of 8

    cuda = flashplus.build_info()["backends"]["cuda"]
    if not cuda.get("compiled"):
        pytest.fail("CUDA tensors on a build without the CUDA backend")
    missing = []
    if _CUDA_DTYPE_NAMES.get(dtype) not in cuda.get("dtypes", []):
        missing.append(f"dtype {dtype}")
    if head_dim > cuda.get("max_head_dim", 0):
        missing.append(f"head dim {head_dim}")
    if backward and not cuda.get("backward"):
        missing.append("backward")
    if missing:
        pytest.skip(f"not in this build ({cuda.get('preset')} preset): {', '.join(missing)}")
