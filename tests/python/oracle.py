"""The test oracle: attention written out in torch float64 (or any dtype, for the "same
precision" baseline), one sequence at a time, sharing no code with flashplus.

Semantics follow include/flashplus/flashplus.h (flash-attn 2.8's): bottom-right aligned
causal / sliding-window masks, softcap before ALiBi, a row that sees no key gives out = 0 and
LSE = +inf, dropout with the Philox keep-mask of src/common/dropout_philox.h (re-implemented
here with numpy uint64 arithmetic).

Tolerance rule (flash-attn's): error(flashplus vs fp64) <= 2 * error(same-precision torch vs
fp64) + atol.
"""
import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# Dropout keep-mask
# ---------------------------------------------------------------------------------------------
_M32 = np.uint64(0xFFFFFFFF)


def _philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on uint64 arrays holding 32-bit values; k0, k1 python ints."""
    m0, m1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    for _ in range(10):
        p0 = m0 * c0  # < 2**64: no wrap for 32-bit operands
        p1 = m1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & _M32
        hi1, lo1 = p1 >> np.uint64(32), p1 & _M32
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
        k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return c0, c1, c2, c3


def keep_mask(seed, offset, p, batch_index, h_q, s_q, s_k):
    """Bool tensor (h_q, s_q, s_k): entries of sequence `batch_index` that dropout keeps."""
    keep_prob = 1.0 - float(np.float32(p))
    scaled = keep_prob * 4294967296.0
    threshold = 0xFFFFFFFF if scaled >= 4294967295.0 else (0 if scaled <= 0 else int(scaled))
    h, i, j = np.meshgrid(np.arange(h_q), np.arange(s_q), np.arange(s_k), indexing="ij")
    u = np.uint64
    words = _philox((j >> 2).astype(u), i.astype(u), (batch_index * h_q + h).astype(u),
                    np.full(j.shape, offset & 0xFFFFFFFF, dtype=u),
                    seed & 0xFFFFFFFF, ((seed >> 32) ^ (offset >> 32)) & 0xFFFFFFFF)
    word = np.choose((j & 3), words)
    return torch.from_numpy(word <= threshold)


# ---------------------------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------------------------
def attention(q, k, v, *, scale=None, causal=False, window=(-1, -1), softcap=0.0, slopes=None,
              keep=None, dropout_p=0.0, dtype=torch.float64):
    """One sequence: q (s_q, h_q, d), k/v (s_k, h_k, d); slopes (h_q,) or None; keep
    (h_q, s_q, s_k) bool or None. Computes in `dtype` (float64 for the oracle, the inputs'
    dtype for the same-precision baseline). Differentiable. Returns (out, lse (h_q, s_q))."""
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    s_q, h_q, d = q.shape
    s_k, h_k = k.shape[0], k.shape[1]
    scale = d ** -0.5 if scale is None else scale
    k = torch.repeat_interleave(k, h_q // h_k, dim=1)
    v = torch.repeat_interleave(v, h_q // h_k, dim=1)
    logits = torch.einsum("qhd,khd->hqk", q * scale, k)
    if softcap > 0:
        logits = torch.tanh(logits / softcap) * softcap
    row = torch.arange(s_q).view(-1, 1) + (s_k - s_q)  # key column aligned with each query
    col = torch.arange(s_k).view(1, -1)
    if slopes is not None:
        logits = logits - slopes.to(dtype).view(-1, 1, 1) * (row - col).abs().to(dtype)
    left, right = window
    if causal:
        right = 0
    allowed = torch.ones(s_q, s_k, dtype=torch.bool)
    if left >= 0:
        allowed &= col >= row - left
    if right >= 0:
        allowed &= col <= row + right
    logits = logits.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(logits.double(), dim=-1)
    # Rows that see no key: softmax over all -inf is NaN (also in the backward), so give those
    # rows finite logits and zero their probabilities instead.
    empty = ~allowed.any(-1)  # (s_q,)
    logits = logits.masked_fill(empty.view(1, -1, 1), 0.0)
    probs = torch.softmax(logits, dim=-1).masked_fill(empty.view(1, -1, 1), 0.0)
    if keep is not None:
        probs = probs.masked_fill(~keep, 0.0) / (1 - dropout_p)
    out = torch.einsum("hqk,khd->qhd", probs, v)
    lse = lse.masked_fill(empty.view(1, -1), float("inf"))
    return out, lse


def probabilities(q, k, *, scale=None, causal=False, window=(-1, -1), softcap=0.0, slopes=None):
    """The softmax probabilities (h_q, s_q, s_k) in float64 (for S_dmask checks)."""
    s_q, h_q, d = q.shape
    eye = torch.eye(k.shape[0], dtype=torch.float64).unsqueeze(1).expand(-1, h_q, -1)
    probs_times_eye, _ = attention(q, torch.repeat_interleave(k, h_q // k.shape[1], dim=1),
                                   eye.contiguous(), scale=scale if scale else d ** -0.5,
                                   causal=causal, window=window, softcap=softcap, slopes=slopes)
    return probs_times_eye.permute(1, 0, 2)


# ---------------------------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------------------------
def max_err(a, b):
    a, b = a.detach().double(), b.detach().double()
    both_inf = torch.isinf(a) & torch.isinf(b) & (torch.sign(a) == torch.sign(b))
    diff = (a - b).abs().masked_fill(both_inf, 0.0)
    return float(diff.max()) if diff.numel() else 0.0


def assert_close(name, actual, oracle, baseline, atol):
    """flash-attn's rule: |actual - oracle| <= 2 * |baseline - oracle| + atol (max norms)."""
    assert actual.shape == oracle.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(oracle.shape)}"
    assert not torch.isnan(actual.double()).any(), f"{name}: NaN"
    err = max_err(actual, oracle)
    bound = 2 * max_err(baseline, oracle) + atol
    assert err <= bound, f"{name}: error {err:.3e} > bound {bound:.3e}"


ATOL = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def rotary(x, cos, sin, positions, interleaved, dtype=torch.float64):
    """Rotary embedding of x (s, h, d) at integer positions (s,), on 2 * cos.shape[1] features."""
    half = cos.shape[1]
    x = x.to(dtype).clone()
    c = cos.to(dtype)[positions].unsqueeze(1)
    s = sin.to(dtype)[positions].unsqueeze(1)
    if interleaved:
        even, odd = x[..., 0:2 * half:2].clone(), x[..., 1:2 * half:2].clone()
        x[..., 0:2 * half:2] = even * c - odd * s
        x[..., 1:2 * half:2] = even * s + odd * c
    else:
        first, second = x[..., :half].clone(), x[..., half:2 * half].clone()
        x[..., :half] = first * c - second * s
        x[..., half:2 * half] = first * s + second * c
    return x
