"""One planned kernel call, forward or backward, and the LSE merge into the fp32 accumulators.

These go straight to flashplus.ops (the C entry points): the ring needs explicit windows per
block, an `out=` view and fp32 outputs of combine, which the flash-attn drop-in API does not
expose. The merge is flashplus_combine (C++ on CPU, a kernel on CUDA) writing in place into the
accumulator view, never a chain of elementwise torch ops.
"""
from dataclasses import dataclass
from typing import Tuple

import torch

from .. import ops
from .plan import KernelCall


@dataclass(frozen=True)
class AttentionParams:
    softmax_scale: float
    softcap: float = 0.0
    deterministic: bool = False


def block_forward(call: KernelCall, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  params: AttentionParams) -> Tuple[torch.Tensor, torch.Tensor]:
    """(out, lse) of the call's query rows against its key rows, in q's dtype and fp32."""
    result = ops.fwd(call.q_rows(q), call.k_rows(k), call.k_rows(v),
                     softmax_scale=params.softmax_scale, softcap=params.softcap,
                     **call.kernel_kwargs())
    return result.out, result.softmax_lse


def _batched(out: torch.Tensor, lse: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    # combine takes (b, s, h, d) and (b, h, s); varlen data is passed as b = 1.
    return (out.unsqueeze(0), lse.unsqueeze(0)) if out.dim() == 3 else (out, lse)


def merge_into(call: KernelCall, acc_out: torch.Tensor, acc_lse: torch.Tensor,
               part_out: torch.Tensor, part_lse: torch.Tensor) -> None:
    """acc (fp32, full local rows) <- LSE-merge of acc and the call's partial result, in place."""
    acc_out_rows, acc_lse_rows = _batched(call.q_rows(acc_out), call.lse_rows(acc_lse))
    part_out, part_lse = _batched(part_out, part_lse)
    ops.combine([acc_out_rows, part_out], [acc_lse_rows, part_lse],
                out=acc_out_rows, lse=acc_lse_rows)


def block_backward(call: KernelCall, dout: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                   v: torch.Tensor, out: torch.Tensor, lse: torch.Tensor, params: AttentionParams,
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of the call's block given the final (merged) out and LSE of the whole row:
    P = exp(S - lse_final) is then exactly this block's share of the softmax."""
    dq, dk, dv, _ = ops.bwd(call.q_rows(dout), call.q_rows(q), call.k_rows(k), call.k_rows(v),
                            call.q_rows(out), call.lse_rows(lse),
                            softmax_scale=params.softmax_scale, softcap=params.softcap,
                            deterministic=params.deterministic, **call.kernel_kwargs())
    return dq, dk, dv


def new_accumulators(q: torch.Tensor, lse_shape) -> Tuple[torch.Tensor, torch.Tensor]:
    """fp32 out = 0 and LSE = +inf: the merge treats +inf as 'no key seen yet'."""
    acc_out = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    acc_lse = torch.full(lse_shape, float("inf"), dtype=torch.float32, device=q.device)
    return acc_out, acc_lse


def lse_shape_of(q: torch.Tensor, varlen: bool):
    """flash-attn's LSE layout: (b, h, s) dense, (h, total) varlen."""
    return (q.shape[1], q.shape[0]) if varlen else (q.shape[0], q.shape[2], q.shape[1])

