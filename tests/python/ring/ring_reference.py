"""The oracle of the ring tests: plain attention on the full sequence, written here with torch
ops and sharing no code with flashplus, plus this test suite's own definition of which global
positions each rank holds in each layout.

`attention` runs in the dtype of its inputs: float64 is the reference; the inputs' own dtype is
the "same precision on one device" baseline of the tolerance rule
    error(ring vs fp64) <= 2 * error(same-precision single device vs fp64) + atol.
"""
from typing import List, Optional, Sequence, Tuple

import torch


def positions(layout: str, rank: int, world_size: int, length: int) -> List[int]:
    """Global positions (within one sequence) that `rank` holds, in local order."""
    if layout == "contiguous":
        n = length // world_size
        return list(range(rank * n, (rank + 1) * n))
    if layout == "zigzag":
        c = length // (2 * world_size)
        late = 2 * world_size - 1 - rank
        return list(range(rank * c, (rank + 1) * c)) + list(range(late * c, (late + 1) * c))
    if layout == "stripe":
        return list(range(rank, length, world_size))
    raise ValueError(layout)


def visible(s: int, causal: bool, window: Tuple[int, int], device) -> torch.Tensor:
    """(s, s) bool mask of one sequence: key j visible to query i."""
    i = torch.arange(s, device=device).view(s, 1)
    j = torch.arange(s, device=device).view(1, s)
    mask = torch.ones(s, s, dtype=torch.bool, device=device)
    left, right = window
    if causal:
        right = 0
    if left >= 0:
        mask &= j >= i - left
    if right >= 0:
        mask &= j <= i + right
    return mask


def _one_sequence(q, k, v, causal, window, softcap, scale):
    """q (s, h, d), k/v (s, h_k, d) -> out (s, h, d), lse (h, s) float."""
    s, h, _ = q.shape
    group = h // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    scores = torch.einsum("ihd,jhd->hij", q, k) * scale
    if softcap:
        scores = softcap * torch.tanh(scores / softcap)
    scores = scores.float() if q.dtype != torch.float64 else scores
    scores = scores.masked_fill(~visible(s, causal, window, q.device), float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    probs = torch.softmax(scores, dim=-1).to(q.dtype)
    return torch.einsum("hij,jhd->ihd", probs, v), lse


def attention(q, k, v, causal=False, window=(-1, -1), softcap=0.0, scale=None,
              cu_seqlens: Optional[Sequence[int]] = None):
    """Dense (b, s, h, d) -> (out, lse (b, h, s)); varlen (total, h, d) with cu_seqlens ->
    (out, lse (h, total)). Differentiable."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if cu_seqlens is None:
        outs, lses = zip(*[_one_sequence(q[i], k[i], v[i], causal, window, softcap, scale)
                           for i in range(q.shape[0])])
        return torch.stack(outs), torch.stack(lses)
    outs, lses = [], []
    for start, stop in zip(cu_seqlens[:-1], cu_seqlens[1:]):
        if stop > start:
            out, lse = _one_sequence(q[start:stop], k[start:stop], v[start:stop], causal, window,
                                     softcap, scale)
            outs.append(out)
            lses.append(lse)
    return torch.cat(outs), torch.cat(lses, dim=1)
