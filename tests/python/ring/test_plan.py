"""The per-step kernel calls, checked without any process group or kernel: render what the
planned calls compute, using only the kernel's documented mask rule, and compare it with the
full sequence's mask restricted to (this rank's queries, the source rank's keys).

Kernel rule (flashplus.h): key j visible to query i iff
    i + s_k - s_q - left <= j <= i + s_k - s_q + right      (-1 = unbounded side)
"""
import itertools

import pytest
import torch

from ring_reference import positions, visible
from flashplus.ring.layouts import rank_segments
from flashplus.ring.masks import Segment, visible_block
from flashplus.ring.plan import dense_ring_plan, source_rank, varlen_ring_plan


def kernel_mask(s_q: int, s_k: int, left: int, right: int) -> torch.Tensor:
    i = torch.arange(s_q).view(-1, 1)
    j = torch.arange(s_k).view(1, -1)
    diag = i + s_k - s_q
    mask = torch.ones(s_q, s_k, dtype=torch.int64)
    if left >= 0:
        mask &= (j >= diag - left).long()
    if right >= 0:
        mask &= (j <= diag + right).long()
    return mask


def render_call(call, n_q: int, n_k: int) -> torch.Tensor:
    """How many times each (local query, local key) pair is computed by `call`."""
    rendered = torch.zeros(n_q, n_k, dtype=torch.int64)
    if call.cu_seqlens_q is None:
        q_ranges = [(call.q_start, call.q_stop)]
        k_ranges = [(call.k_start, call.k_stop)]
    else:
        cu_q, cu_k = call.cu_seqlens_q.tolist(), call.cu_seqlens_k.tolist()
        q_ranges = [(call.q_start + a, call.q_start + b) for a, b in zip(cu_q, cu_q[1:])]
        k_ranges = [(call.k_start + a, call.k_start + b) for a, b in zip(cu_k, cu_k[1:])]
        assert max(b - a for a, b in q_ranges) <= call.max_seqlen_q
        assert max(b - a for a, b in k_ranges) <= call.max_seqlen_k
    for (q0, q1), (k0, k1) in zip(q_ranges, k_ranges):
        if q1 > q0 and k1 > k0:
            rendered[q0:q1, k0:k1] += kernel_mask(q1 - q0, k1 - k0, call.window_left,
                                                  call.window_right)
    return rendered


WINDOWS = [(False, (-1, -1)), (True, (-1, -1)), (False, (5, 3)), (True, (7, -1)),
           (False, (2, 1)), (False, (0, 0)), (False, (-1, 4)), (True, (0, -1))]


def _normalized(causal, window):
    left, right = window
    return left, (0 if causal else right)


@pytest.mark.parametrize("causal,window", WINDOWS)
@pytest.mark.parametrize("layout", ["contiguous", "zigzag", "stripe"])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_dense_plan_covers_exactly_the_global_mask(layout, world_size, causal, window):
    local = 6
    length = local * world_size
    full = visible(length, causal, window, "cpu").long()
    left, right = _normalized(causal, window)
    for rank in range(world_size):
        plan = dense_ring_plan(layout, rank, world_size, local, left, right)
        mine = positions(layout, rank, world_size, length)
        for step, calls in enumerate(plan):
            theirs = positions(layout, source_rank(rank, step, world_size), world_size, length)
            expected = full[mine][:, theirs]
            rendered = sum((render_call(c, local, local) for c in calls),
                           torch.zeros(local, local, dtype=torch.int64))
            assert torch.equal(rendered, expected), (rank, step, calls)


@pytest.mark.parametrize("causal,window", WINDOWS)
@pytest.mark.parametrize("layout", ["contiguous", "zigzag", "stripe"])
@pytest.mark.parametrize("world_size", [2, 3])
def test_varlen_plan_covers_exactly_the_global_mask(layout, world_size, causal, window):
    lengths = [2 * world_size * n for n in (3, 1, 0, 5, 2)]
    total = sum(lengths)
    full = torch.zeros(total, total, dtype=torch.int64)
    start = 0
    for n in lengths:
        full[start:start + n, start:start + n] = visible(n, causal, window, "cpu").long()
        start += n
    local_cu = [0] + list(itertools.accumulate(n // world_size for n in lengths))
    left, right = _normalized(causal, window)
    n_local = local_cu[-1]
    for rank in range(world_size):
        plan = varlen_ring_plan(layout, rank, world_size, local_cu, left, right, "cpu")

        def packed(r):
            index, begin = [], 0
            for n in lengths:
                index += [begin + p for p in positions(layout, r, world_size, n)]
                begin += n
            return index

        for step, calls in enumerate(plan):
            expected = full[packed(rank)][:, packed(source_rank(rank, step, world_size))]
            rendered = sum((render_call(c, n_local, n_local) for c in calls),
                           torch.zeros(n_local, n_local, dtype=torch.int64))
            assert torch.equal(rendered, expected), (rank, step, calls)


def test_causal_steps_are_single_calls():
    # The common cases must not fragment: contiguous and stripe make one call per step,
    # zigzag at most three on its diagonal step and one elsewhere.
    for rank in range(4):
        for layout, most in (("contiguous", 1), ("stripe", 1), ("zigzag", 3)):
            plan = dense_ring_plan(layout, rank, 4, 8, -1, 0)
            assert max(len(calls) for calls in plan) <= most
        zigzag = dense_ring_plan("zigzag", rank, 4, 8, -1, 0)
        assert all(len(calls) == 1 for calls in zigzag[1:])


def test_varlen_causal_step_is_one_call_even_with_one_token_sequences():
    plan = varlen_ring_plan("contiguous", 0, 2, [0, 1, 5, 6], -1, 0, "cpu")
    assert len(plan[0]) == 1


def test_visible_block_exhaustive_small_segments():
    # Every pair of short segments and every small window: the block renders the band exactly.
    for stride, q_start, k_start, n_q, n_k, left, right in itertools.product(
            [1, 3], range(0, 7, 3), range(0, 7, 2), [1, 3], [1, 4], [-1, 0, 2, 5], [-1, 0, 1, 4]):
        q = Segment(0, n_q, q_start, stride)
        k = Segment(0, n_k, k_start, stride)
        gq = torch.tensor([q_start + stride * i for i in range(n_q)]).view(-1, 1)
        gk = torch.tensor([k_start + stride * j for j in range(n_k)]).view(1, -1)
        expected = torch.ones(n_q, n_k, dtype=torch.int64)
        if left >= 0:
            expected &= (gk >= gq - left).long()
        if right >= 0:
            expected &= (gk <= gq + right).long()
        block = visible_block(q, k, left, right)
        rendered = torch.zeros(n_q, n_k, dtype=torch.int64)
        if block is not None:
            rendered[block.q_start:block.q_stop, block.k_start:block.k_stop] = kernel_mask(
                block.q_stop - block.q_start, block.k_stop - block.k_start,
                block.window_left, block.window_right)
            assert block.window_left >= -1 and block.window_right >= -1
        assert torch.equal(rendered, expected), (q, k, left, right, block)


def test_rank_segments_match_positions():
    for layout, world_size, rank in itertools.product(["contiguous", "zigzag", "stripe"], [1, 2, 3],
                                                      range(3)):
        if rank >= world_size:
            continue
        local = 4
        expected = positions(layout, rank, world_size, local * world_size)
        got = [0] * local
        for seg in rank_segments(layout, rank, world_size, local):
            for i in range(seg.length):
                got[seg.local_start + i] = seg.global_start + i * seg.stride
        assert got == expected
