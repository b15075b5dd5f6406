"""The kernel calls a rank makes at each ring step, computed once on the host.

A step pairs this rank's query segments with the key segments that arrived (see layouts.py);
masks.visible_block turns each pair into at most one block with an exact window. Unmasked
neighbours are merged so that, for example, zigzag's two fully visible pairs become one call.

Dense tensors (b, s, h, d) are sliced along s: every batch entry has the same layout, so a block
is a view. Varlen tensors (total, h, d) hold one piece of every sequence, and the window of a
block depends on the sequence's length; blocks of equal window become one varlen call. Rows a
call must skip between its blocks become filler sequences with no keys (or keys with no
queries): the kernel returns out = 0 and LSE = +inf for them, which the merge ignores.
"""
import functools
import itertools
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .layouts import rank_segments
from .masks import UNBOUNDED, Block, Segment, visible_block


@dataclass(frozen=True, eq=False)
class KernelCall:
    """Query rows [q_start, q_stop) against key rows [k_start, k_stop) of the local tensors, with
    the kernel's window; varlen calls carry cu_seqlens relative to those row ranges."""
    q_start: int
    q_stop: int
    k_start: int
    k_stop: int
    window_left: int
    window_right: int
    cu_seqlens_q: Optional[torch.Tensor] = None
    cu_seqlens_k: Optional[torch.Tensor] = None
    max_seqlen_q: int = 0
    max_seqlen_k: int = 0

    @property
    def varlen(self) -> bool:
        return self.cu_seqlens_q is not None

    def _token_dim(self) -> int:
        return 0 if self.varlen else 1  # (total, h, d) or (b, s, h, d)

    def q_rows(self, t: torch.Tensor) -> torch.Tensor:
        return t.narrow(self._token_dim(), self.q_start, self.q_stop - self.q_start)

    def k_rows(self, t: torch.Tensor) -> torch.Tensor:
        return t.narrow(self._token_dim(), self.k_start, self.k_stop - self.k_start)

    def lse_rows(self, t: torch.Tensor) -> torch.Tensor:
        # LSE is (b, h, s) or (h, total): tokens are always the last dimension.
        return t.narrow(-1, self.q_start, self.q_stop - self.q_start)

    def kernel_kwargs(self) -> Dict:
        kwargs = dict(causal=self.window_right == 0, window_left=self.window_left,
                      window_right=self.window_right)
        if self.varlen:
            kwargs.update(cu_seqlens_q=self.cu_seqlens_q, cu_seqlens_k=self.cu_seqlens_k,
                          max_seqlen_q=self.max_seqlen_q, max_seqlen_k=self.max_seqlen_k)
        return kwargs


def normalize_window(causal: bool, window_size: Sequence[int]) -> Tuple[int, int]:
    """flash-attn's (causal, window_size) as one band; any negative size means unbounded."""
    left, right = (int(w) for w in window_size)
    left = UNBOUNDED if left < 0 else left
    right = UNBOUNDED if right < 0 else right
    if causal:
        right = 0
    return left, right


def _merge_two(a: Block, b: Block) -> Optional[Block]:
    if not (a.unmasked and b.unmasked):
        return None
    if (a.k_start, a.k_stop) == (b.k_start, b.k_stop) and a.q_stop == b.q_start:
        return Block(a.q_start, b.q_stop, a.k_start, a.k_stop, UNBOUNDED, UNBOUNDED)
    if (a.q_start, a.q_stop) == (b.q_start, b.q_stop) and a.k_stop == b.k_start:
        return Block(a.q_start, a.q_stop, a.k_start, b.k_stop, UNBOUNDED, UNBOUNDED)
    return None


def merge_unmasked(blocks: Sequence[Block]) -> List[Block]:
    """Fuse unmasked blocks that share their rows (or columns) and touch: fewer, larger calls."""
    merged = list(blocks)
    while True:
        for a, b in itertools.permutations(merged, 2):
            fused = _merge_two(a, b)
            if fused is not None:
                merged = [x for x in merged if x is not a and x is not b] + [fused]
                break
        else:
            return sorted(merged, key=lambda blk: (blk.q_start, blk.k_start))


def step_blocks(q_segments: Sequence[Segment], k_segments: Sequence[Segment],
                window_left: int, window_right: int) -> List[Block]:
    """The visible blocks between one rank's query segments and another's key segments."""
    blocks = [visible_block(q, k, window_left, window_right) for q in q_segments for k in k_segments]
    return merge_unmasked([b for b in blocks if b is not None])


def _shift(block: Block, q_offset: int, k_offset: int) -> Block:
    return Block(block.q_start + q_offset, block.q_stop + q_offset, block.k_start + k_offset,
                 block.k_stop + k_offset, block.window_left, block.window_right)


def _bins(blocks: Sequence[Block]) -> List[List[Block]]:
    """Split same-window blocks into groups whose query and key ranges both increase, as the
    sequences of one varlen call must."""
    bins: List[List[Block]] = []
    for blk in sorted(blocks, key=lambda b: (b.q_start, b.k_start)):
        for group in bins:
            if group[-1].q_stop <= blk.q_start and group[-1].k_stop <= blk.k_start:
                group.append(blk)
                break
        else:
            bins.append([blk])
    return bins


def _varlen_call(blocks: Sequence[Block], device: torch.device) -> KernelCall:
    q_lo, k_lo = blocks[0].q_start, blocks[0].k_start
    q_lens: List[int] = []
    k_lens: List[int] = []
    q_cursor, k_cursor = q_lo, k_lo
    for blk in blocks:
        if blk.q_start > q_cursor:  # skipped queries: a filler sequence with no keys
            q_lens.append(blk.q_start - q_cursor)
            k_lens.append(0)
        if blk.k_start > k_cursor:  # skipped keys: a filler sequence with no queries
            q_lens.append(0)
            k_lens.append(blk.k_start - k_cursor)
        q_lens.append(blk.q_stop - blk.q_start)
        k_lens.append(blk.k_stop - blk.k_start)
        q_cursor, k_cursor = blk.q_stop, blk.k_stop
    cu_q = torch.tensor([0] + list(itertools.accumulate(q_lens)), dtype=torch.int32, device=device)
    cu_k = torch.tensor([0] + list(itertools.accumulate(k_lens)), dtype=torch.int32, device=device)
    return KernelCall(q_lo, q_cursor, k_lo, k_cursor, blocks[0].window_left, blocks[0].window_right,
                      cu_q, cu_k, max(q_lens), max(k_lens))


def _side_fits(own: int, shared: int, no_op_from: int) -> bool:
    # An unbounded side may take any window that cuts nothing in this block.
    if own != UNBOUNDED:
        return own == shared
    return shared == UNBOUNDED or shared >= no_op_from


def _fits(blk: Block, window: Tuple[int, int]) -> bool:
    s_q, s_k = blk.q_stop - blk.q_start, blk.k_stop - blk.k_start
    return (_side_fits(blk.window_left, window[0], s_k - 1)
            and _side_fits(blk.window_right, window[1], s_q - 1))


def _with_window(blk: Block, window: Tuple[int, int]) -> Block:
    return Block(blk.q_start, blk.q_stop, blk.k_start, blk.k_stop, window[0], window[1])


def varlen_calls(blocks: Sequence[Block], device: torch.device) -> List[KernelCall]:
    """One varlen call per (window, increasing group) of packed-coordinate blocks. A block whose
    window is unbounded on a side joins a group whose window cuts nothing in it (a sequence of
    one query row is unmasked under causal), so a causal step stays one call."""
    counts: Dict[Tuple[int, int], int] = {}
    for blk in blocks:
        key = (blk.window_left, blk.window_right)
        counts[key] = counts.get(key, 0) + 1
    # Bounded windows first: an unbounded block can take a bounded window, never the reverse.
    windows = sorted(counts, key=lambda w: (w.count(UNBOUNDED), -counts[w]))
    by_window: Dict[Tuple[int, int], List[Block]] = {}
    for blk in blocks:
        window = next(w for w in windows if _fits(blk, w))
        by_window.setdefault(window, []).append(_with_window(blk, window))
    return [_varlen_call(group, device) for same in by_window.values() for group in _bins(same)]


def dense_calls(blocks: Sequence[Block]) -> List[KernelCall]:
    return [KernelCall(b.q_start, b.q_stop, b.k_start, b.k_stop, b.window_left, b.window_right)
            for b in blocks]


RingPlan = Tuple[Tuple[KernelCall, ...], ...]  # [step] -> calls; step t holds rank (r - t)'s K/V


def source_rank(rank: int, step: int, world_size: int) -> int:
    return (rank - step) % world_size


@functools.lru_cache(maxsize=64)
def dense_ring_plan(layout: str, rank: int, world_size: int, local_length: int,
                    window_left: int, window_right: int) -> RingPlan:
    mine = rank_segments(layout, rank, world_size, local_length)
    return tuple(
        tuple(dense_calls(step_blocks(
            mine, rank_segments(layout, source_rank(rank, t, world_size), world_size, local_length),
            window_left, window_right)))
        for t in range(world_size))


@functools.lru_cache(maxsize=64)
def _varlen_ring_plan(layout: str, rank: int, world_size: int, cu_seqlens: Tuple[int, ...],
                      window_left: int, window_right: int, device: torch.device) -> RingPlan:
    steps = []
    for t in range(world_size):
        source = source_rank(rank, t, world_size)
        blocks: List[Block] = []
        for start, stop in zip(cu_seqlens[:-1], cu_seqlens[1:]):
            n = stop - start
            if n == 0:
                continue
            blocks += [_shift(b, start, start) for b in step_blocks(
                rank_segments(layout, rank, world_size, n),
                rank_segments(layout, source, world_size, n), window_left, window_right)]
        steps.append(tuple(varlen_calls(blocks, device)))
    return tuple(steps)


def varlen_ring_plan(layout: str, rank: int, world_size: int, cu_seqlens: Sequence[int],
                     window_left: int, window_right: int, device: torch.device) -> RingPlan:
    """Every rank holds the same local cu_seqlens (each sequence split evenly), so the K/V that
    arrive from any rank have this rank's packing."""
    return _varlen_ring_plan(layout, rank, world_size, tuple(int(c) for c in cu_seqlens),
                             window_left, window_right, torch.device(device))
