"""Bad arguments raise ValueError / RuntimeError naming the argument, before any work is done
(outputs and caches untouched), and never crash the process."""
import pytest
import torch

from fa_support import cu_seqlens, rand
from flash_attn import flash_attn_func, flash_attn_varlen_func, flash_attn_with_kvcache
from flash_attn import flash_attn_interface as fai


def q_k_v(b=1, s=8, h=2, d=16, dtype=torch.float32):
    return rand(b, s, h, d, dtype=dtype), rand(b, s, h, d, dtype=dtype), rand(b, s, h, d, dtype=dtype)


def raises(fn, *names):
    with pytest.raises((ValueError, RuntimeError)) as info:
        fn()
    message = str(info.value)
    assert any(name in message for name in names), f"{names} not named in: {message}"
    return message


def test_unsupported_dtype():
    q, k, v = q_k_v(dtype=torch.float64)
    raises(lambda: flash_attn_func(q, k, v), "q")


def test_mixed_dtypes():
    q, k, v = q_k_v()
    raises(lambda: flash_attn_func(q, k.bfloat16(), v), "k", "dtype")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_mismatch():
    q, k, v = q_k_v(dtype=torch.float16)
    raises(lambda: flash_attn_func(q.cuda(), k, v.cuda()), "k", "device")


def test_bad_rank():
    q, k, v = q_k_v()
    raises(lambda: flash_attn_func(q[0], k, v), "q")


def test_head_dim_mismatch():
    q, k, v = q_k_v()
    raises(lambda: flash_attn_func(q, k[..., :8], v), "k", "head")


def test_head_dim_too_large():
    q, k, v = q_k_v(d=264)
    raises(lambda: flash_attn_func(q, k, v), "head", "256", "d")


def test_heads_not_divisible():
    q = rand(1, 8, 3, 16)
    k = v = rand(1, 8, 2, 16)
    raises(lambda: flash_attn_func(q, k, v), "h_q", "head", "h_k")


def test_window_size_not_a_pair():
    q, k, v = q_k_v()
    raises(lambda: flash_attn_func(q, k, v, window_size=3), "window_size")


def test_dropout_out_of_range():
    q, k, v = q_k_v()
    raises(lambda: flash_attn_func(q, k, v, dropout_p=1.5), "dropout")


def test_cu_seqlens_dtype():
    q = rand(10, 2, 16)
    cu = cu_seqlens([4, 6]).long()
    raises(lambda: flash_attn_varlen_func(q, q, q, cu, cu, 6, 6), "cu_seqlens")


def test_cu_seqlens_decreasing():
    q = rand(10, 2, 16)
    cu = torch.tensor([0, 6, 4, 10], dtype=torch.int32)
    raises(lambda: flash_attn_varlen_func(q, q, q, cu, cu, 6, 6), "cu_seqlens")


def test_cu_seqlens_total_mismatch():
    q = rand(10, 2, 16)
    cu = torch.tensor([0, 4, 12], dtype=torch.int32)
    raises(lambda: flash_attn_varlen_func(q, q, q, cu, cu, 8, 8), "cu_seqlens")


def test_block_table_out_of_range():
    q = rand(1, 1, 2, 16)
    k_cache = rand(4, 16, 2, 16)
    v_cache = k_cache.clone()
    before = k_cache.clone()
    table = torch.tensor([[0, 9]], dtype=torch.int32)
    raises(lambda: flash_attn_with_kvcache(q, k_cache, v_cache, rand(1, 1, 2, 16),
                                           rand(1, 1, 2, 16), cache_seqlens=20,
                                           block_table=table), "block_table")
    assert torch.equal(k_cache, before), "the cache was written before the error"


def test_kvcache_append_past_the_end():
    q = rand(1, 1, 2, 16)
    k_cache, v_cache = rand(1, 8, 2, 16), rand(1, 8, 2, 16)
    before = k_cache.clone()
    raises(lambda: flash_attn_with_kvcache(q, k_cache, v_cache, rand(1, 2, 2, 16),
                                           rand(1, 2, 2, 16), cache_seqlens=7), "cache")
    assert torch.equal(k_cache, before)


def test_dropout_with_paged_kv():
    q = rand(4, 2, 16)
    pages = rand(2, 4, 2, 16)
    cu = cu_seqlens([4])
    table = torch.tensor([[0, 1]], dtype=torch.int32)
    raises(lambda: flash_attn_varlen_func(q, pages, pages, cu, cu, 4, 4, dropout_p=0.1,
                                          block_table=table), "dropout", "block_table", "paged")


def test_backward_with_dropout_needs_rng_state():
    q, k, v = q_k_v()
    out, lse, _, _ = fai._flash_attn_forward(q, k, v, 0.1, 0.25, False, -1, -1, 0.0, None, False)
    raises(lambda: fai._flash_attn_backward(q, q, k, v, out, lse, None, None, None, 0.1, 0.25,
                                            False, -1, -1, 0.0, None, False), "rng_state")


def test_alibi_wrong_dtype():
    q, k, v = q_k_v()
    raises(lambda: flash_attn_func(q, k, v, alibi_slopes=torch.ones(2, dtype=torch.float64)),
           "alibi")


def test_not_a_tensor():
    q, k, v = q_k_v()
    message = raises(lambda: flash_attn_func(q, k, [1, 2, 3]), "v")
    assert "torch.Tensor" in message and "list" in message, message


def test_unknown_backend(monkeypatch):
    monkeypatch.setenv("FLASHPLUS_BACKEND", "nonsense")
    q, k, v = q_k_v()
    raises(lambda: flash_attn_func(q, k, v), "FLASHPLUS_BACKEND")


def test_error_types():
    import flashplus

    q, k, v = q_k_v()
    with pytest.raises(flashplus.InvalidArgumentError):
        flash_attn_func(q, k[..., :8], v)
    assert issubclass(flashplus.InvalidArgumentError, ValueError)
    assert issubclass(flashplus.UnsupportedError, RuntimeError)
    assert issubclass(flashplus.NotCompiledError, RuntimeError)


def test_take_index_errors_without_a_gpu():
    """CUDA index contents are checked by the kernels; reading their record needs a device."""
    import flashplus
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: tests/python/test_cuda.py covers the record")
    # A build without CUDA has nothing to record ([]); a CUDA build without a usable device says so.
    try:
        recorded = flashplus.take_index_errors()
    except flashplus.DeviceError as error:
        assert "cuda" in str(error).lower(), str(error)
    else:
        assert recorded == []
        flashplus.check_index_errors()
