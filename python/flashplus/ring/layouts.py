"""How a sequence is split over the ranks of a ring, and helpers to shard and unshard tensors.

Three layouts (N = world size, s = sequence length):
  contiguous  rank r holds tokens [r s/N, (r+1) s/N). Simple, but with a causal mask rank r
              only has work in r + 1 of the N ring steps, so the last rank sets the pace.
  zigzag      the sequence is cut into 2N chunks; rank r holds chunks r and 2N-1-r. Every
              rank gets one early and one late chunk, so causal work is balanced.
  stripe      token t lives on rank t % N at local row t // N (stripe attention with block
              size 1). Causal work is balanced and each step's mask is a plain causal one.

Dense tensors are split along `dim` (1 for (b, s, h, d), 2 for an LSE (b, h, s)); varlen tensors
(total, h, d) are split per sequence along dim 0 (dim 1 for an LSE (h, total)), every sequence
with the layout above, which is what the *_varlen_func variants expect.
"""
from typing import List, Sequence, Tuple

import torch
import torch.distributed as dist

from .masks import Segment

LAYOUTS = ("contiguous", "zigzag", "stripe")


def _chunks_per_rank(layout: str) -> int:
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    return 2 if layout == "zigzag" else 1


def check_length(length: int, layout: str, world_size: int, what: str = "sequence length") -> None:
    """Raise unless a sequence of `length` tokens splits evenly in `layout`."""
    parts = _chunks_per_rank(layout) * world_size
    if length % parts:
        raise ValueError(f"{what} {length} must be divisible by {parts} for the {layout} layout "
                         f"over {world_size} ranks")


def rank_segments(layout: str, rank: int, world_size: int, local_length: int) -> Tuple[Segment, ...]:
    """The global positions of the `local_length` rows that `rank` holds of one sequence."""
    if layout == "contiguous":
        return (Segment(0, local_length, rank * local_length),)
    if layout == "stripe":
        return (Segment(0, local_length, rank, world_size),)
    if layout == "zigzag":
        if local_length % 2:
            raise ValueError(f"zigzag needs an even number of local tokens per sequence, got {local_length}")
        chunk = local_length // 2
        return (Segment(0, chunk, rank * chunk),
                Segment(chunk, chunk, (2 * world_size - 1 - rank) * chunk))
    raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")


def shard(x: torch.Tensor, layout: str, rank: int, world_size: int, dim: int = 1) -> torch.Tensor:
    """The part of the full-sequence tensor x that `rank` holds (a new contiguous tensor)."""
    dim = dim % x.dim()
    length = x.shape[dim]
    check_length(length, layout, world_size)
    if layout == "contiguous":
        return x.chunk(world_size, dim)[rank].contiguous()
    if layout == "zigzag":
        chunks = x.chunk(2 * world_size, dim)
        return torch.cat([chunks[rank], chunks[2 * world_size - 1 - rank]], dim).contiguous()
    strided = x.unflatten(dim, (length // world_size, world_size))
    return strided.select(dim + 1, rank).contiguous()


def unshard(shards: Sequence[torch.Tensor], layout: str, dim: int = 1) -> torch.Tensor:
    """The full-sequence tensor from the shards of all ranks, in rank order (inverse of shard)."""
    _chunks_per_rank(layout)
    dim = dim % shards[0].dim()
    if layout == "contiguous":
        return torch.cat(list(shards), dim)
    if layout == "zigzag":
        halves = [s.chunk(2, dim) for s in shards]
        early = [h[0] for h in halves]
        late = [h[1] for h in reversed(halves)]
        return torch.cat(early + late, dim)
    return torch.stack(list(shards), dim + 1).flatten(dim, dim + 1)


def _seqlens(cu_seqlens) -> List[int]:
    cu = cu_seqlens.tolist() if isinstance(cu_seqlens, torch.Tensor) else list(cu_seqlens)
    return [cu[i + 1] - cu[i] for i in range(len(cu) - 1)]


def shard_varlen(x: torch.Tensor, cu_seqlens, layout: str, rank: int, world_size: int,
                 dim: int = 0) -> torch.Tensor:
    """Varlen: shard every sequence of the packed tensor x (global cu_seqlens) on its own."""
    pieces, start = [], 0
    for i, length in enumerate(_seqlens(cu_seqlens)):
        check_length(length, layout, world_size, f"sequence {i} length")
        pieces.append(shard(x.narrow(dim, start, length), layout, rank, world_size, dim))
        start += length
    return torch.cat(pieces, dim) if pieces else x.narrow(dim, 0, 0).clone()


def unshard_varlen(shards: Sequence[torch.Tensor], cu_seqlens, layout: str,
                   dim: int = 0) -> torch.Tensor:
    """Varlen: inverse of shard_varlen; cu_seqlens are the global (full-sequence) ones."""
    world_size = len(shards)
    pieces, start = [], 0
    for length in _seqlens(cu_seqlens):
        local = length // world_size
        pieces.append(unshard([s.narrow(dim, start, local) for s in shards], layout, dim))
        start += local
    return torch.cat(pieces, dim) if pieces else shards[0].narrow(dim, 0, 0).clone()


def local_cu_seqlens(cu_seqlens: torch.Tensor, layout: str, world_size: int) -> torch.Tensor:
    """The cu_seqlens of every rank's shard (cu_seqlens / world_size), after checking that
    each sequence splits evenly."""
    for i, length in enumerate(_seqlens(cu_seqlens)):
        check_length(length, layout, world_size, f"sequence {i} length")
    return torch.div(cu_seqlens, world_size, rounding_mode="floor").to(torch.int32)


def gather_unshard(local: torch.Tensor, layout: str, group=None, dim: int = 1,
                   cu_seqlens=None) -> torch.Tensor:
    """All-gather every rank's shard and reassemble the full sequence (on every rank).
    Pass the global cu_seqlens for varlen tensors (then dim is the packed token dim)."""
    world_size = dist.get_world_size(group)
    shards = [torch.empty_like(local) for _ in range(world_size)]
    dist.all_gather(shards, local.contiguous(), group=group)
    if cu_seqlens is not None:
        return unshard_varlen(shards, cu_seqlens, layout, dim)
    return unshard(shards, layout, dim)


def zigzag_shard(x, rank, world_size, dim=1):
    return shard(x, "zigzag", rank, world_size, dim)


def zigzag_unshard(shards, dim=1):
    return unshard(shards, "zigzag", dim)


def stripe_shard(x, rank, world_size, dim=1):
    return shard(x, "stripe", rank, world_size, dim)


def stripe_unshard(shards, dim=1):
    return unshard(shards, "stripe", dim)
