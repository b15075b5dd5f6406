"""The ring suite on GPUs with NCCL, 2 and 4 ranks (one GPU each); skips without enough GPUs.

Run on a multi-GPU machine with plain pytest (the pool spawns one process per GPU):
    pytest tests/python/ring/test_ring_gpu.py
Shapes are those the CUDA kernels are built for (head dim 128, bf16 / fp16) and long enough
that every rank runs several kernel tiles per step. The main cases run forward only ("fwd") and
forward + backward ("fwd_bwd"), so the forward can be checked on a build without the CUDA
backward.
"""
import pytest

from ring_checks import assert_matches_reference

ATOL = 1e-3


def _require_cuda_dtype(dtype: str) -> None:
    """Skip when the loaded build has no CUDA kernels of this dtype (the dev preset is bf16 only)."""
    import flashplus

    compiled = flashplus.build_info()["backends"]["cuda"].get("dtypes", [])
    if {"float16": "fp16", "bfloat16": "bf16"}[dtype] not in compiled:
        pytest.skip(f"this build has no CUDA {dtype} kernels (compiled: {compiled})")
GPU = dict(device="cuda", dtype="bfloat16", d=128, h=8, h_k=2)

MASKS = {
    "full": dict(),
    "causal": dict(causal=True),
    "window": dict(window=(100, 37)),
    "causal_window": dict(causal=True, window=(300, -1)),
    "narrow_window": dict(window=(2, 1)),
    "softcap_causal": dict(causal=True, softcap=30.0),
}
VARIANTS = ["ring", "zigzag", "stripe"]
PASSES = pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd_bwd"])


@PASSES
@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("variant", VARIANTS)
def test_dense(gpu_pool, variant, mask, backward):
    results = gpu_pool.run("dense", variant=variant, b=2, s_local=256, **GPU, **MASKS[mask],
                           backward=backward)
    assert_matches_reference(results, ATOL)


@pytest.mark.parametrize("variant", VARIANTS)
def test_dense_fp16_mqa(gpu_pool, variant):
    _require_cuda_dtype("float16")
    results = gpu_pool.run("dense", variant=variant, b=1, s_local=256,
                           **dict(GPU, dtype="float16", h_k=1), causal=True)
    assert_matches_reference(results, ATOL)


@pytest.mark.parametrize("packing", ["kv", "qkv"])
def test_dense_packed(gpu_pool, packing):
    heads = dict(GPU, h_k=8) if packing == "qkv" else GPU
    results = gpu_pool.run("dense", variant="zigzag", packing=packing, b=1, s_local=128,
                           **heads, causal=True)
    assert_matches_reference(results, ATOL)


@PASSES
def test_process_group_subset(gpu_pool, backward):
    members = [1, gpu_pool.world_size - 1] if gpu_pool.world_size > 2 else [0, 1]
    results = gpu_pool.run("dense", variant="stripe", b=1, s_local=128, **GPU, causal=True,
                           window=(200, -1), group_ranks=members, backward=backward)
    assert_matches_reference(results, ATOL)


# Divisible by 2 * 4 ranks; uneven, with an empty sequence and a one-chunk sequence.
VARLEN_LENGTHS = [128, 512, 0, 8, 376]


@PASSES
@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("variant", VARIANTS)
def test_varlen(gpu_pool, variant, mask, backward):
    results = gpu_pool.run("varlen", variant=variant, lengths=VARLEN_LENGTHS, **GPU,
                           **MASKS[mask], backward=backward)
    assert_matches_reference(results, ATOL)


@PASSES
@pytest.mark.parametrize("mask", list(MASKS))
def test_llama3(gpu_pool, mask, backward):
    results = gpu_pool.run("llama3", lengths=[100, 411, 3, 250, 260], heads_k_stride=1, **GPU,
                           **MASKS[mask], backward=backward)
    assert_matches_reference(results, ATOL)
