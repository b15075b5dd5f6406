"""Philox4x32-10 dropout keep-mask in plain torch, for the reference backend.

Mirrors the stream layout of src/common/dropout_philox.h (read that header for the why):
counter (j >> 2, i, b * h_q + h, offset_lo), key (seed_lo, seed_hi ^ offset_hi), word j & 3
decides entry (b, h, i, j), kept iff word <= dropout_keep_threshold(p).
torch has no uint32 arithmetic on every version we support, so 32-bit words live in int64
tensors and 32x32->64-bit products are assembled from 16-bit halves to stay below 2**63.
"""
import ctypes

import torch

_M32 = 0xFFFFFFFF
_MUL0, _MUL1 = 0xD2511F53, 0xCD9E8D57
_WEYL0, _WEYL1 = 0x9E3779B9, 0xBB67AE85


def keep_threshold(dropout_p: float) -> int:
    keep = 1.0 - float(ctypes.c_float(dropout_p).value)  # the ABI passes p as a C float
    scaled = keep * 4294967296.0
    if scaled >= 4294967295.0:
        return _M32
    if scaled <= 0.0:
        return 0
    return int(scaled)


def _mulhilo(const: int, x: torch.Tensor):
    # const * x = p_hi * 2**16 + p_lo with both partial products below 2**48.
    p_lo = x * (const & 0xFFFF)
    p_hi = x * (const >> 16)
    t = p_lo + ((p_hi & 0xFFFF) << 16)
    return (p_hi >> 16) + (t >> 32), t & _M32


def philox4x32_10(c0, c1, c2, c3, k0: int, k1: int):
    for _ in range(10):
        hi0, lo0 = _mulhilo(_MUL0, c0)
        hi1, lo1 = _mulhilo(_MUL1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + _WEYL0) & _M32
        k1 = (k1 + _WEYL1) & _M32
    return c0, c1, c2, c3


def keep_mask(seed: int, offset: int, dropout_p: float, batch: int, h_q: int,
              s_q: int, s_k: int, device) -> torch.Tensor:
    """Bool (h_q, s_q, s_k): True where entry (batch, h, i, j) is kept."""
    seed &= (1 << 64) - 1
    offset &= (1 << 64) - 1
    k0 = seed & _M32
    k1 = (seed >> 32) ^ (offset >> 32)
    groups = (s_k + 3) // 4
    shape = (h_q, s_q, groups)
    c0 = torch.arange(groups, dtype=torch.int64, device=device).view(1, 1, groups).expand(shape)
    c1 = torch.arange(s_q, dtype=torch.int64, device=device).view(1, s_q, 1).expand(shape)
    heads = torch.arange(h_q, dtype=torch.int64, device=device) + batch * h_q
    c2 = heads.view(h_q, 1, 1).expand(shape)
    c3 = torch.full(shape, offset & _M32, dtype=torch.int64, device=device)
    words = torch.stack(philox4x32_10(c0, c1, c2, c3, k0, k1), dim=-1)  # (h, s_q, groups, 4)
    words = words.reshape(h_q, s_q, groups * 4)[..., :s_k]
    return words <= keep_threshold(dropout_p)
