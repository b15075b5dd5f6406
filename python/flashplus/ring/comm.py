"""Communication of the ring: async point-to-point shifts and the collectives of llama3 mode.

A shift sends tensors to the next rank and receives the same shapes from the previous one with
torch.distributed.batch_isend_irecv, so the caller can compute while the transfer runs (NCCL
moves the data on its own stream; gloo on its own threads) and wait only when it needs the data.
Ranks are the group's; peers are translated to global ranks, as P2POp expects.
"""
from typing import List, Optional, Sequence

import torch
import torch.distributed as dist


class PendingShift:
    """Tensors being received; `wait()` returns them once the whole exchange is done."""

    def __init__(self, works, received: List[torch.Tensor]):
        self._works = works
        self._received = received

    def wait(self) -> List[torch.Tensor]:
        for work in self._works:
            work.wait()
        self._works = []
        return self._received


class RingComm:
    def __init__(self, group: Optional[dist.ProcessGroup]):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("ring attention needs torch.distributed initialised "
                               "(torch.distributed.init_process_group) before the call")
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        if self.rank < 0:
            raise ValueError("this process is not a member of the process group passed as `group`")
        self.next_peer = self._global((self.rank + 1) % self.world_size)
        self.prev_peer = self._global((self.rank - 1) % self.world_size)

    def _global(self, group_rank: int) -> int:
        if self.group is None:
            return group_rank
        return dist.get_global_rank(self.group, group_rank)

    def shift(self, tensors: Sequence[torch.Tensor]) -> PendingShift:
        """Start sending `tensors` to the next rank and receiving the previous rank's."""
        sends = [t.contiguous() for t in tensors]
        received = [torch.empty_like(t) for t in sends]
        if self.world_size == 1:
            return PendingShift([], sends)
        ops = [dist.P2POp(dist.isend, t, self.next_peer, self.group) for t in sends]
        ops += [dist.P2POp(dist.irecv, t, self.prev_peer, self.group) for t in received]
        return PendingShift(dist.batch_isend_irecv(ops), received)


def all_gather_async(local: torch.Tensor, group) -> PendingShift:
    """Start gathering every rank's `local` (same shape) into one tensor, rank-major on dim 0."""
    world_size = dist.get_world_size(group)
    gathered = torch.empty((world_size * local.shape[0],) + tuple(local.shape[1:]),
                           dtype=local.dtype, device=local.device)
    work = dist.all_gather_into_tensor(gathered, local.contiguous(), group=group, async_op=True)
    return PendingShift([work], [gathered])


def reduce_scatter_async(full: torch.Tensor, group) -> PendingShift:
    """Start summing `full` (world_size * n rows) over ranks; this rank keeps its n rows."""
    world_size = dist.get_world_size(group)
    mine = torch.empty((full.shape[0] // world_size,) + tuple(full.shape[1:]),
                       dtype=full.dtype, device=full.device)
    work = dist.reduce_scatter_tensor(mine, full.contiguous(), group=group, async_op=True)
    return PendingShift([work], [mine])
