"""Shard / unshard helpers against this suite's own position lists, and argument errors that
need no process group."""
import itertools

import pytest
import torch

from ring_reference import positions
from flashplus import ring
from flashplus.errors import UnsupportedError

LAYOUTS = ["contiguous", "zigzag", "stripe"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("dim", [1, 2])
def test_shard_selects_the_layout_positions_and_unshard_inverts(layout, world_size, dim):
    length = 2 * world_size * 3
    shape = [2, 5, 3]
    shape.insert(dim, length)
    x = torch.randn(shape)
    shards = [ring.shard(x, layout, rank, world_size, dim=dim) for rank in range(world_size)]
    for rank, local in enumerate(shards):
        index = torch.tensor(positions(layout, rank, world_size, length))
        assert torch.equal(local, x.index_select(dim, index))
        assert local.is_contiguous()
    assert torch.equal(ring.unshard(shards, layout, dim=dim), x)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_varlen_shard_round_trip(layout):
    world_size = 3
    lengths = [6, 0, 18, 12]
    cu = [0] + list(itertools.accumulate(lengths))
    x = torch.randn(cu[-1], 2, 4)
    shards = [ring.shard_varlen(x, torch.tensor(cu), layout, r, world_size)
              for r in range(world_size)]
    for rank, local in enumerate(shards):
        index = [start + p for start, n in zip(cu, lengths)
                 for p in positions(layout, rank, world_size, n)]
        assert torch.equal(local, x[index])
    assert torch.equal(ring.unshard_varlen(shards, cu, layout), x)
    lse = torch.randn(2, cu[-1])
    lse_shards = [ring.shard_varlen(lse, cu, layout, r, world_size, dim=1)
                  for r in range(world_size)]
    assert torch.equal(ring.unshard_varlen(lse_shards, cu, layout, dim=1), lse)
    local_cu = ring.local_cu_seqlens(torch.tensor(cu, dtype=torch.int32), layout, world_size)
    assert local_cu.tolist() == [c // world_size for c in cu]


def test_named_helpers():
    x = torch.randn(1, 12, 2, 4)
    assert torch.equal(ring.zigzag_unshard([ring.zigzag_shard(x, r, 3) for r in range(3)]), x)
    assert torch.equal(ring.stripe_unshard([ring.stripe_shard(x, r, 4) for r in range(4)]), x)


def test_indivisible_lengths_are_rejected():
    with pytest.raises(ValueError, match="divisible by 6"):
        ring.shard(torch.randn(1, 8, 2, 4), "zigzag", 0, 3)
    with pytest.raises(ValueError, match="sequence 1 length"):
        ring.local_cu_seqlens(torch.tensor([0, 4, 9], dtype=torch.int32), "stripe", 2)


def test_llama3_prepare_cu_seqlens():
    cu = torch.tensor([0, 7, 30, 41, 42, 48], dtype=torch.int32)
    # 48 tokens over 3 ranks: rank 1 holds tokens [16, 32), in sequences 1 (7..30) and 2 (30..41).
    cu_q, cu_k, max_q, max_k, k_slice = ring.llama3_flash_attn_prepare_cu_seqlens(cu, True, 1, 3)
    assert cu_q.tolist() == [0, 14, 16] and cu_k.tolist() == [0, 23, 25]
    assert (max_q, max_k, k_slice) == (14, 23, slice(7, 32))
    cu_q, cu_k, max_q, max_k, k_slice = ring.llama3_flash_attn_prepare_cu_seqlens(cu, False, 1, 3)
    assert cu_q.tolist() == [0, 14, 16] and cu_k.tolist() == [0, 23, 34]
    assert (max_q, max_k, k_slice) == (14, 23, slice(7, 41))


def test_dropout_and_alibi_are_rejected_with_a_reason():
    q = torch.randn(1, 8, 2, 16)
    with pytest.raises(UnsupportedError, match="dropout"):
        ring.ring_flash_attn_func(q, q, q, dropout_p=0.1)
    with pytest.raises(NotImplementedError, match="alibi"):
        ring.zigzag_ring_flash_attn_func(q, q, q, alibi_slopes=torch.ones(2))


def test_without_process_group_the_error_says_so():
    q = torch.randn(1, 8, 2, 16)
    with pytest.raises(RuntimeError, match="init_process_group"):
        ring.stripe_flash_attn_func(q, q, q)
