"""torch.autograd.Function around the ring loop, shared by every layout and by varlen."""
from typing import Optional

import torch

from ..errors import UnsupportedError
from .comm import RingComm
from .kernels import AttentionParams
from .plan import RingPlan
from .ring_loop import ring_backward, ring_forward


class RingAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, plan: RingPlan, comm: RingComm, params: AttentionParams,
                varlen: bool):
        out, lse = ring_forward(q, k, v, plan, comm, params, varlen)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.plan, ctx.comm, ctx.params = plan, comm, params
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = ring_backward(dout, q, k, v, out, lse, ctx.plan, ctx.comm, ctx.params)
        return dq, dk, dv, None, None, None, None


def reject_unsupported(dropout_p: float, alibi_slopes: Optional[torch.Tensor]) -> None:
    """Dropout and ALiBi are refused rather than computed wrongly.

    Dropout: the kernel draws its keep-mask from (seed, offset, local row, local column), so a
    block computed on another rank, or with trimmed rows, would not reproduce the single-device
    mask, and forward and backward would have to agree on it across ranks.
    ALiBi: the kernel's bias -slope * |i + s_k - s_q - j| is tied to the block's bottom-right
    corner, which is not the true distance between tokens of different shards."""
    if dropout_p:
        raise UnsupportedError(
            f"flashplus.ring: dropout_p={dropout_p} is not supported; ring attention runs without "
            "attention dropout (pass dropout_p=0.0, e.g. attention_dropout=0 in the model config)")
    if alibi_slopes is not None:
        raise UnsupportedError("flashplus.ring: alibi_slopes are not supported by ring attention")
