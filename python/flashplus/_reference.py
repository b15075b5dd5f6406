"""The plain-torch reference backend (FLASHPLUS_BACKEND=reference), for debugging.

Same contract as the C library (flashplus.h), computed per sequence in float32 with ordinary
torch ops: slow, simple, and independent of the compiled code, so a wrong answer can be pinned
on one side. Each function fills the output tensors that ops.py allocated, like the C entry
points do. The backward recomputes the forward and applies the textbook gradient formulas
(_attend_grads); it cannot use torch.autograd because it runs inside a custom op, below torch's
autograd dispatch.
"""
import math
from typing import List, Optional

import torch

from . import _philox


def _ints(t: Optional[torch.Tensor]) -> Optional[List[int]]:
    return None if t is None else t.reshape(-1).tolist()


def _slopes_row(alibi_slopes, b: int):
    if alibi_slopes is None:
        return None
    return (alibi_slopes[b] if alibi_slopes.dim() == 2 else alibi_slopes).float()


def _attend(q, k, v, *, scale, softcap, window_left, window_right, slopes, dropout=None):
    """One sequence. q (s_q, h_q, d), k/v (s_k, h_k, d), float32.
    Returns out (s_q, h_q, d), lse (h_q, s_q), the signed probabilities (h_q, s_q, s_k), and
    what the backward needs: (p, dropped p, tanh of the capped logits or None)."""
    s_q, h_q, _ = q.shape
    s_k, h_k, _ = k.shape
    group = h_q // h_k
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    x = torch.einsum("ihd,jhd->hij", q, k) * scale
    capped = None
    if softcap > 0:
        capped = torch.tanh(x / softcap)
        x = softcap * capped
    i = torch.arange(s_q, device=q.device).view(s_q, 1)
    j = torch.arange(s_k, device=q.device).view(1, s_k)
    diag = i + s_k - s_q  # the key column aligned with query row i
    if slopes is not None:
        x = x - slopes.view(h_q, 1, 1) * (diag - j).abs().to(x.dtype)
    visible = torch.ones(s_q, s_k, dtype=torch.bool, device=q.device)
    if window_left >= 0:
        visible &= j >= diag - window_left
    if window_right >= 0:
        visible &= j <= diag + window_right
    x = x.masked_fill(~visible, float("-inf"))
    row_max = x.amax(dim=-1, keepdim=True) if s_k > 0 else x.new_full((h_q, s_q, 1), float("-inf"))
    row_max = torch.where(torch.isinf(row_max), torch.zeros_like(row_max), row_max)
    e = torch.exp(x - row_max)
    total = e.sum(dim=-1, keepdim=True)
    p = e / torch.where(total == 0, torch.ones_like(total), total)
    lse = (row_max + torch.log(total)).squeeze(-1)
    lse = torch.where(total.squeeze(-1) == 0, torch.full_like(lse, float("inf")), lse)
    signed, dropped = p, p
    if dropout is not None:
        keep, dropout_p = dropout
        dropped = torch.where(keep, p / (1.0 - dropout_p), torch.zeros_like(p))
        signed = torch.where(keep, p, -p)
    out = torch.einsum("hij,jhd->ihd", dropped, v)
    return out, lse, signed, (p, dropped, capped)


def _attend_grads(q, k, v, dout, out, saved, *, scale, softcap, dropout):
    """Gradients of _attend for one sequence, written out (no autograd: this runs inside a
    custom op, below torch's autograd dispatch). dout/out (s_q, h_q, d) float32."""
    p, dropped, capped = saved
    h_q, h_k = q.shape[1], k.shape[1]
    group = h_q // h_k
    k_rep = k.repeat_interleave(group, dim=1)
    v_rep = v.repeat_interleave(group, dim=1)
    dv = torch.einsum("hij,ihd->jhd", dropped, dout)
    dp = torch.einsum("ihd,jhd->hij", dout, v_rep)
    if dropout is not None:
        keep, dropout_p = dropout
        dp = torch.where(keep, dp / (1.0 - dropout_p), torch.zeros_like(dp))
    row_dot = (dout * out).sum(-1).transpose(0, 1).unsqueeze(-1)  # (h_q, s_q, 1)
    ds = p * (dp - row_dot)
    if capped is not None:
        ds = ds * (1 - capped * capped)
    dq = torch.einsum("hij,jhd->ihd", ds, k_rep) * scale
    dk = torch.einsum("hij,ihd->jhd", ds, q) * scale

    def fold(g):  # sum the query heads of each GQA group onto their key head
        return g.reshape(g.shape[0], h_k, group, g.shape[-1]).sum(2)

    return dq, fold(dk), fold(dv)


class _Layout:
    """Where sequence i's queries and keys are, for dense, varlen and paged calls."""

    def __init__(self, q, k, cu_seqlens_q, cu_seqlens_k, seqused_k, leftpad_k, block_table):
        self.varlen = cu_seqlens_q is not None
        self.cu_q = _ints(cu_seqlens_q)
        self.cu_k = _ints(cu_seqlens_k)
        self.seqused = _ints(seqused_k)
        self.leftpad = _ints(leftpad_k)
        self.block_table = block_table
        self.batch = len(self.cu_q) - 1 if self.varlen else q.shape[0]
        self.q = q
        self.k = k

    def q_rows(self, t, i):
        return t[self.cu_q[i]:self.cu_q[i + 1]] if self.varlen else t[i]

    def k_length(self, i):
        if self.cu_k is not None:
            return self.cu_k[i + 1] - self.cu_k[i]
        if self.block_table is not None:
            return self.block_table.shape[1] * self.k.shape[1]
        return self.k.shape[1]

    def k_rows(self, t, i):
        """(start, end, rows): the keys sequence i sees, after seqused_k and leftpad_k."""
        end = self.seqused[i] if self.seqused is not None else self.k_length(i)
        start = self.leftpad[i] if self.leftpad is not None else 0
        if self.block_table is not None:
            page = t.shape[1]
            rows = torch.arange(start, end, device=t.device)
            pages = self.block_table[i].long()[rows // page]
            return t[pages, rows % page]
        seq = t[self.cu_k[i]:self.cu_k[i + 1]] if self.cu_k is not None else t[i]
        return seq[start:end]


def _dropout_for(dropout_p, seed, offset, b, h_q, s_q, s_k, device):
    if dropout_p <= 0:
        return None
    return _philox.keep_mask(seed, offset, dropout_p, b, h_q, s_q, s_k, device), dropout_p


# The keyword arguments match _native's; the reference ignores sizes it can read from the
# tensors (max_seqlen_*), knobs that only steer kernels (num_splits, deterministic), and
# is_causal in fwd/bwd, where ops.py already folded it into window_right.


def fwd(q, k, v, out, softmax_lse, s_dmask, *, cu_seqlens_q, cu_seqlens_k, seqused_k,
        leftpad_k, block_table, alibi_slopes, max_seqlen_q, max_seqlen_k, softmax_scale,
        softcap, is_causal, window_left, window_right, dropout_p, philox_seed, philox_offset,
        num_splits):
    layout = _Layout(q, k, cu_seqlens_q, cu_seqlens_k, seqused_k, leftpad_k, block_table)
    if s_dmask is not None:
        s_dmask.zero_()
    for b in range(layout.batch):
        qb = layout.q_rows(q, b).float()
        kb, vb = layout.k_rows(k, b).float(), layout.k_rows(v, b).float()
        s_q, h_q, s_k = qb.shape[0], qb.shape[1], kb.shape[0]
        o, lse, p, _ = _attend(
            qb, kb, vb, scale=softmax_scale, softcap=softcap, window_left=window_left,
            window_right=window_right, slopes=_slopes_row(alibi_slopes, b),
            dropout=_dropout_for(dropout_p, philox_seed, philox_offset, b, h_q, s_q, s_k, q.device))
        layout.q_rows(out, b).copy_(o)
        if layout.varlen:
            softmax_lse[:, layout.cu_q[b]:layout.cu_q[b + 1]] = lse
        else:
            softmax_lse[b] = lse
        if s_dmask is not None:
            s_dmask[b, :, :s_q, :s_k] = p


def bwd(dout, q, k, v, out, softmax_lse, dq, dk, dv, softmax_d, *, cu_seqlens_q, cu_seqlens_k,
        alibi_slopes, max_seqlen_q, max_seqlen_k, softmax_scale, softcap, is_causal,
        window_left, window_right, dropout_p, philox_seed, philox_offset, deterministic):
    layout = _Layout(q, k, cu_seqlens_q, cu_seqlens_k, None, None, None)
    dk.zero_()
    dv.zero_()
    for b in range(layout.batch):
        qb = layout.q_rows(q, b).float()
        kb, vb = layout.k_rows(k, b).float(), layout.k_rows(v, b).float()
        s_q, h_q, s_k = qb.shape[0], qb.shape[1], kb.shape[0]
        dropout = _dropout_for(dropout_p, philox_seed, philox_offset, b, h_q, s_q, s_k, q.device)
        o, _, _, saved = _attend(
            qb, kb, vb, scale=softmax_scale, softcap=softcap, window_left=window_left,
            window_right=window_right, slopes=_slopes_row(alibi_slopes, b), dropout=dropout)
        do = layout.q_rows(dout, b).float()
        gq, gk, gv = _attend_grads(qb, kb, vb, do, o, saved, scale=softmax_scale,
                                   softcap=softcap, dropout=dropout)
        layout.q_rows(dq, b).copy_(gq)
        layout.k_rows(dk, b).copy_(gk)
        layout.k_rows(dv, b).copy_(gv)
        d = (do * layout.q_rows(out, b).float()).sum(-1).transpose(0, 1)  # (h_q, s_q)
        if layout.varlen:
            softmax_d[:, layout.cu_q[b]:layout.cu_q[b + 1]] = d
        else:
            softmax_d[b] = d


def _rotate(x, cos, sin, positions, interleaved):
    """Rotary embedding of x (s, h, d) float32 at the given positions (s,), on 2 * cos.size(1) dims."""
    rd = 2 * cos.shape[1]
    c = cos[positions].float().unsqueeze(1)  # (s, 1, rd / 2)
    s = sin[positions].float().unsqueeze(1)
    rot, rest = x[..., :rd], x[..., rd:]
    if interleaved:
        x0, x1 = rot[..., 0::2], rot[..., 1::2]
        rot = torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)
    else:
        x0, x1 = rot[..., : rd // 2], rot[..., rd // 2:]
        rot = torch.cat((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1)
    return torch.cat((rot, rest), dim=-1)


def fwd_kvcache(q, k_cache, v_cache, k_new, v_new, rotary_cos, rotary_sin, cache_seqlens,
                cache_batch_idx, cache_leftpad, block_table, alibi_slopes, out, softmax_lse, *,
                softmax_scale, softcap, is_causal, window_left, window_right,
                rotary_interleaved, num_splits):
    batch, s_q = q.shape[0], q.shape[1]
    s_new = 0 if k_new is None else k_new.shape[1]
    seqlens = _ints(cache_seqlens)
    batch_idx = _ints(cache_batch_idx)
    leftpad = _ints(cache_leftpad)
    local = is_causal or window_left >= 0 or window_right >= 0
    if is_causal:
        window_right = 0
    for b in range(batch):
        entry = batch_idx[b] if batch_idx is not None else b
        capacity = block_table.shape[1] * k_cache.shape[1] if block_table is not None \
            else k_cache.shape[1]
        c = seqlens[b] if seqlens is not None else capacity - s_new
        start = leftpad[b] if leftpad is not None else 0

        def cache_rows(t, lo, hi):
            rows = torch.arange(lo, hi, device=t.device)
            if block_table is None:
                return t[entry], rows
            page = t.shape[1]
            return t, (block_table[b].long()[rows // page], rows % page)

        if s_new:
            kn = k_new[b].float()
            if rotary_cos is not None:
                kn = _rotate(kn, rotary_cos, rotary_sin, torch.arange(c, c + s_new, device=q.device),
                             rotary_interleaved)
            for src, cache in ((kn, k_cache), (v_new[b].float(), v_cache)):
                base, index = cache_rows(cache, c, c + s_new)
                base[index] = src.to(cache.dtype)
        qb = q[b].float()
        if rotary_cos is not None:
            pos = torch.arange(c, c + s_q, device=q.device) if local \
                else torch.full((s_q,), c, device=q.device)
            qb = _rotate(qb, rotary_cos, rotary_sin, pos, rotary_interleaved).to(q.dtype).float()
        keys = []
        for cache in (k_cache, v_cache):
            base, index = cache_rows(cache, start, c + s_new)
            keys.append(base[index].float())
        o, lse, _, _ = _attend(qb, keys[0], keys[1], scale=softmax_scale, softcap=softcap,
                            window_left=window_left, window_right=window_right,
                            slopes=_slopes_row(alibi_slopes, b))
        out[b].copy_(o)
        if softmax_lse is not None:
            softmax_lse[b] = lse


def combine(out_partials, lse_partials, out, lse):
    lses = torch.stack([x.float() for x in lse_partials])  # (n, b, h, s)
    outs = torch.stack([x.float() for x in out_partials])  # (n, b, s, h, d)
    finite = torch.isfinite(lses)
    safe = torch.where(finite, lses, torch.full_like(lses, -math.inf))
    total = torch.logsumexp(safe, dim=0)
    weights = torch.where(finite, torch.exp(safe - total), torch.zeros_like(safe))
    merged = torch.einsum("nbhs,nbshd->bshd", weights, outs)
    out.copy_(merged)
    if lse is not None:
        lse.copy_(torch.where(torch.isfinite(total), total, torch.full_like(total, math.inf)))
