"""The ring: N steps, each computing local queries against the K/V block in hand while the
next block is already on its way.

Forward, step t on rank r: K/V of rank (r - t) mod N are here. Start shifting them onwards
(double-buffered: the next block lands in fresh buffers while this one is read), run the step's
planned kernel calls and LSE-merge each partial into fp32 accumulators, then wait for the shift.

Backward, same order. dQ accumulates locally in fp32. dK/dV belong to the K/V block's owner,
so each block's fp32 dK/dV accumulator travels with it: at step t the rank adds its share to
the accumulator that arrived from the previous rank (received while it computed) and passes it
on; after the last step one more shift brings every accumulator home.
"""
from typing import List, Optional, Tuple

import torch

from .comm import PendingShift, RingComm
from .kernels import (AttentionParams, block_backward, block_forward, lse_shape_of, merge_into,
                      new_accumulators)
from .plan import RingPlan


def ring_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: RingPlan,
                 comm: RingComm, params: AttentionParams, varlen: bool
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    acc_out, acc_lse = new_accumulators(q, lse_shape_of(q, varlen))
    kv: List[torch.Tensor] = [k, v]
    last = comm.world_size - 1
    for step, calls in enumerate(plan):
        incoming: Optional[PendingShift] = comm.shift(kv) if step < last else None
        for call in calls:
            part_out, part_lse = block_forward(call, q, kv[0], kv[1], params)
            merge_into(call, acc_out, acc_lse, part_out, part_lse)
        if incoming is not None:
            kv = incoming.wait()
    return acc_out.to(q.dtype), acc_lse


def ring_backward(dout: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  out: torch.Tensor, lse: torch.Tensor, plan: RingPlan, comm: RingComm,
                  params: AttentionParams) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dq = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    kv: List[torch.Tensor] = [k, v]
    dkv_in: Optional[PendingShift] = None  # the travelling dK/dV of the block in hand
    last = comm.world_size - 1
    for step, calls in enumerate(plan):
        incoming = comm.shift(kv) if step < last else None
        if calls or dkv_in is None:
            dk = torch.zeros(k.shape, dtype=torch.float32, device=k.device)
            dv = torch.zeros(v.shape, dtype=torch.float32, device=v.device)
            for call in calls:
                dq_part, dk_part, dv_part = block_backward(call, dout, q, kv[0], kv[1], out, lse,
                                                           params)
                call.q_rows(dq).add_(dq_part)
                call.k_rows(dk).add_(dk_part)
                call.k_rows(dv).add_(dv_part)
            if dkv_in is not None:
                travelled_dk, travelled_dv = dkv_in.wait()
                dk += travelled_dk
                dv += travelled_dv
        else:  # nothing visible: the block's gradient passes through unchanged
            dk, dv = dkv_in.wait()
        dkv_in = comm.shift([dk, dv])
        if incoming is not None:
            kv = incoming.wait()
    dk, dv = dkv_in.wait()
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)
