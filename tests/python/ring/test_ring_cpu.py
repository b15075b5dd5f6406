"""Every ring variant against attention on the full sequence, on CPU with gloo (2 and 3 ranks).

Shapes are small (local shards of 12 tokens, head dim 16) so the suite stays fast on two cores;
windows are chosen to cut across shard boundaries (5 and 7 tokens left, 3 right) and to be
narrower than the stripe stride (2, 1), where some steps see no key at all.
"""
import pytest

from ring_checks import assert_matches_reference

FP32_ATOL = 5e-6
BF16_ATOL = 1e-3

MASKS = {
    "full": dict(),
    "causal": dict(causal=True),
    "window": dict(window=(5, 3)),
    "causal_window": dict(causal=True, window=(7, -1)),
    "narrow_window": dict(window=(2, 1)),
    "softcap_causal": dict(causal=True, softcap=5.0),
}
VARIANTS = ["ring", "zigzag", "stripe"]


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("variant", VARIANTS)
def test_dense(cpu_pool, variant, mask):
    results = cpu_pool.run("dense", variant=variant, **MASKS[mask])
    assert_matches_reference(results, FP32_ATOL)


@pytest.mark.parametrize("variant", VARIANTS)
def test_dense_mqa_causal_window(cpu_pool, variant):
    results = cpu_pool.run("dense", variant=variant, h=6, h_k=1, causal=True, window=(9, -1))
    assert_matches_reference(results, FP32_ATOL)


@pytest.mark.parametrize("packing", ["kv", "qkv"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_dense_packed(cpu_pool, variant, packing):
    h_k = 4 if packing == "qkv" else 2
    results = cpu_pool.run("dense", variant=variant, packing=packing, h=4, h_k=h_k, causal=True)
    assert_matches_reference(results, FP32_ATOL)


@pytest.mark.parametrize("variant", VARIANTS)
def test_dense_bf16(cpu_pool, variant):
    results = cpu_pool.run("dense", variant=variant, dtype="bfloat16", causal=True,
                           window=(7, -1), softcap=5.0)
    assert_matches_reference(results, BF16_ATOL)


def test_process_group_subset(pool_factory):
    # Ranks 1 and 2 of 3 form the ring: group ranks differ from global ranks, and rank 0 idles.
    pool = pool_factory("gloo", 3)
    results = pool.run("dense", variant="zigzag", causal=True, window=(7, -1), group_ranks=[1, 2])
    assert results[0] is None
    assert_matches_reference(results, FP32_ATOL)


# Lengths divisible by 2 * world size for 2 and 3 ranks, uneven, with an empty sequence and a
# sequence of one zigzag chunk per rank.
VARLEN_LENGTHS = {2: [12, 40, 0, 4, 24], 3: [12, 36, 0, 6, 30]}


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("variant", VARIANTS)
def test_varlen(cpu_pool, variant, mask):
    results = cpu_pool.run("varlen", variant=variant,
                           lengths=VARLEN_LENGTHS[cpu_pool.world_size], **MASKS[mask])
    assert_matches_reference(results, FP32_ATOL)


@pytest.mark.parametrize("packing", ["kv", "qkv"])
def test_varlen_packed(cpu_pool, packing):
    h_k = 4 if packing == "qkv" else 2
    results = cpu_pool.run("varlen", variant="zigzag", packing=packing, h=4, h_k=h_k,
                           lengths=VARLEN_LENGTHS[cpu_pool.world_size], causal=True)
    assert_matches_reference(results, FP32_ATOL)


# Packed batch of 48 tokens (divisible by 2 and 3) whose sequence ends fall inside rank slices.
LLAMA3_LENGTHS = [7, 23, 11, 1, 6]


@pytest.mark.parametrize("mask", list(MASKS))
def test_llama3(cpu_pool, mask):
    results = cpu_pool.run("llama3", lengths=LLAMA3_LENGTHS, **MASKS[mask])
    assert_matches_reference(results, FP32_ATOL)


def test_llama3_heads_k_stride(cpu_pool):
    results = cpu_pool.run("llama3", lengths=LLAMA3_LENGTHS, h=8, h_k=4, heads_k_stride=2,
                           causal=True, window=(5, -1))
    assert_matches_reference(results, FP32_ATOL)
