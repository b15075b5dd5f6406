"""Which part of one (query shard, key shard) pair is visible, as one kernel call can express it.

The mask of the whole sequence is a band: key J is visible to query I iff
I - window_left <= J <= I + window_right (causal is window_right = 0; -1 = unbounded). A rank
holds its tokens as segments, each an arithmetic progression of global positions (contiguous
for ring and zigzag, stride world_size for stripe). Between a query segment and a key segment of
the same stride the band stays a band in local indices: j - i in [lo, hi].

The kernel can only express bands relative to the bottom-right corner with non-negative window
sizes: key j is visible to query i iff i + s_k - s_q - left <= j <= i + s_k - s_q + right. So
we trim both segments to the bounding box of the visible entries first. Inside that box the
band always passes through the bottom-right corner's reach (the last visible row sees the last
visible column or a column left of it, and vice versa), which makes both window sizes >= 0, so
every block pair maps to exactly one kernel call, or to none when nothing is visible.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

UNBOUNDED = -1


@dataclass(frozen=True)
class Segment:
    """`length` tokens stored at local rows [local_start, local_start + length) whose global
    positions are global_start, global_start + stride, ..."""
    local_start: int
    length: int
    global_start: int
    stride: int = 1


@dataclass(frozen=True)
class Block:
    """One kernel call: local query rows [q_start, q_stop) against local key rows
    [k_start, k_stop) with the kernel's bottom-right aligned window (UNBOUNDED = -1)."""
    q_start: int
    q_stop: int
    k_start: int
    k_stop: int
    window_left: int
    window_right: int

    @property
    def unmasked(self) -> bool:
        return self.window_left == UNBOUNDED and self.window_right == UNBOUNDED


def _floor_div(a: int, b: int) -> int:
    return a // b


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def local_band(q: Segment, k: Segment, window_left: int,
               window_right: int) -> Tuple[Optional[int], Optional[int]]:
    """The band [lo, hi] of j - i (local row i of q, local row j of k) that the global window
    allows; None = unbounded. Global J - I = (k.global_start - q.global_start) + stride (j - i)."""
    if q.stride != k.stride:
        raise ValueError(f"segments of different strides ({q.stride}, {k.stride}) do not form a band")
    offset = k.global_start - q.global_start
    lo = None if window_left == UNBOUNDED else _ceil_div(-window_left - offset, q.stride)
    hi = None if window_right == UNBOUNDED else _floor_div(window_right - offset, q.stride)
    return lo, hi


def visible_block(q: Segment, k: Segment, window_left: int, window_right: int) -> Optional[Block]:
    """The kernel call that computes exactly the visible part of (q, k), or None if none is."""
    lo, hi = local_band(q, k, window_left, window_right)
    if lo is not None and hi is not None and lo > hi:
        return None
    n_q, n_k = q.length, k.length
    # Row i sees some key iff [i + lo, i + hi] meets [0, n_k); column j likewise for rows.
    row_first = 0 if hi is None else max(0, -hi)
    row_last = n_q - 1 if lo is None else min(n_q - 1, n_k - 1 - lo)
    col_first = 0 if lo is None else max(0, lo)
    col_last = n_k - 1 if hi is None else min(n_k - 1, n_q - 1 + hi)
    if row_first > row_last or col_first > col_last:
        return None
    s_q = row_last - row_first + 1
    s_k = col_last - col_first + 1
    corner = s_k - s_q  # the kernel's diagonal: j' - i' = s_k - s_q
    shift = row_first - col_first  # j' - i' = (j - i) + shift inside the trimmed box
    left = right = UNBOUNDED
    # A bound is only passed when it cuts something: lo' > 1 - s_q means the last row is
    # limited on the left; hi' < s_k - 1 means the first row is limited on the right.
    if lo is not None and lo + shift > 1 - s_q:
        left = corner - (lo + shift)
        assert left >= 0, "the bounding box keeps the left window >= 0"
    if hi is not None and hi + shift < s_k - 1:
        right = (hi + shift) - corner
        assert right >= 0, "the bounding box keeps the right window >= 0"
    return Block(q.local_start + row_first, q.local_start + row_last + 1,
                 k.local_start + col_first, k.local_start + col_last + 1, left, right)
