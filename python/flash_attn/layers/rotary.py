"""Rotary position embedding (flash_attn.layers.rotary.apply_rotary_emb) in plain torch.

The rotation is computed in float32 and rounded once to x's dtype. Its backward is the same
rotation by the opposite angle (sin negated), so no activations beyond cos/sin are kept.
Positions past the end of cos/sin are left unrotated.
"""
from typing import Optional, Union

import torch


def _positions(x, cu_seqlens, max_seqlen, seqlen_offsets):
    """The rotary position of every row of x: (b, s) dense or (total,) with cu_seqlens."""
    if cu_seqlens is None:
        b, s = x.shape[0], x.shape[1]
        pos = torch.arange(s, device=x.device).expand(b, s)
        if isinstance(seqlen_offsets, torch.Tensor):
            return pos + seqlen_offsets.to(x.device).long().view(b, 1)
        return pos + int(seqlen_offsets)
    starts = cu_seqlens.long()
    total = x.shape[0]
    seq_of_row = torch.searchsorted(starts[1:], torch.arange(total, device=x.device), right=True)
    pos = torch.arange(total, device=x.device) - starts[seq_of_row]
    if isinstance(seqlen_offsets, torch.Tensor):
        return pos + seqlen_offsets.to(x.device).long()[seq_of_row]
    return pos + int(seqlen_offsets)


def _rotate(x, cos, sin, positions, interleaved, conjugate):
    """x (..., h, d) rotated on its first 2 * cos.size(1) features; positions shaped x[..., 0, 0]."""
    rd = 2 * cos.shape[-1]
    in_range = positions < cos.shape[0]
    idx = positions.clamp(max=cos.shape[0] - 1)
    c = torch.where(in_range.unsqueeze(-1), cos.float()[idx], torch.ones((), device=x.device))
    s = torch.where(in_range.unsqueeze(-1), sin.float()[idx], torch.zeros((), device=x.device))
    if conjugate:
        s = -s
    c, s = c.unsqueeze(-2), s.unsqueeze(-2)  # broadcast over heads
    xf = x[..., :rd].float()
    if interleaved:
        x0, x1 = xf[..., 0::2], xf[..., 1::2]
        rot = torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)
    else:
        x0, x1 = xf[..., : rd // 2], xf[..., rd // 2:]
        rot = torch.cat((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1)
    return rot.to(x.dtype)


class ApplyRotaryEmb(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin, interleaved=False, inplace=False, seqlen_offsets=0,
                cu_seqlens=None, max_seqlen=None):
        positions = _positions(x, cu_seqlens, max_seqlen, seqlen_offsets)
        rd = 2 * cos.shape[-1]
        out = x if inplace else x.clone()
        out[..., :rd] = _rotate(x, cos, sin, positions, interleaved, conjugate=False)
        ctx.save_for_backward(cos, sin, positions)
        ctx.interleaved, ctx.inplace = interleaved, inplace
        if inplace:
            ctx.mark_dirty(x)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        cos, sin, positions = ctx.saved_tensors
        rd = 2 * cos.shape[-1]
        grad = grad_out.clone()
        grad[..., :rd] = _rotate(grad_out, cos, sin, positions, ctx.interleaved, conjugate=True)
        return grad, None, None, None, None, None, None, None


def apply_rotary_emb(
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    interleaved: bool = False,
    inplace: bool = False,
    seqlen_offsets: Union[int, torch.Tensor] = 0,
    cu_seqlens: Optional[torch.Tensor] = None,
    max_seqlen: Optional[int] = None,
):
    """x (b, s, h, d), or (total, h, d) with cu_seqlens (b + 1) int32 and max_seqlen.
    cos, sin (s_ro, rotary_dim / 2): the first rotary_dim features are rotated, pairs
    (2t, 2t + 1) if interleaved (GPT-J) else (t, t + rotary_dim / 2) (GPT-NeoX); the rest pass
    through. seqlen_offsets: int or (b,) tensor added to each row's position (decoding).
    Returns the rotated x (x itself, modified, when inplace)."""
    return ApplyRotaryEmb.apply(x, cos, sin, interleaved, inplace, seqlen_offsets, cu_seqlens,
                                max_seqlen)


apply_rotary_emb_func = apply_rotary_emb
