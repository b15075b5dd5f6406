"""torch.compile(fullgraph=True) traces through the public API: the custom ops' fake
implementations stand in for the C calls, so there is no graph break, and compiled results
equal eager ones. aot_eager exercises Dynamo, AOTAutograd and functionalization (what our ops
touch) quickly; one test also goes through the default inductor backend."""
import pytest
import torch

from fa_support import DEVICES, cu_seqlens, rand, require_build
from flash_attn import flash_attn_func, flash_attn_varlen_func, flash_attn_with_kvcache


def _dtype(device):
    return torch.bfloat16 if device == "cuda" else torch.float32


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _grads(fn, *inputs):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    out.float().square().sum().backward()
    return [out.detach()] + [t.grad for t in leaves]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_flash_attn_func(device, backend):
    dtype = _dtype(device)
    require_build(device, dtype, 32, backward=True)
    q = rand(2, 24, 4, 32, device=device, dtype=dtype)
    k, v = rand(2, 24, 2, 32, device=device, dtype=dtype), rand(2, 24, 2, 32, device=device, dtype=dtype)

    def attn(q, k, v):
        return flash_attn_func(q * 1.5, k, v, causal=True, softcap=5.0) + 1

    compiled = torch.compile(attn, fullgraph=True, backend=backend)
    for got, expected in zip(_grads(compiled, q, k, v), _grads(attn, q, k, v)):
        assert torch.allclose(got.float(), expected.float(), atol=1e-5 if device == "cpu" else 2e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_flash_attn_func_dropout_and_lse(device):
    dtype = _dtype(device)
    require_build(device, dtype, 16)
    q, k, v = (rand(1, 16, 2, 16, device=device, dtype=dtype) for _ in range(3))

    def attn(q, k, v):
        out, lse, _ = flash_attn_func(q, k, v, dropout_p=0.2, return_attn_probs=True)
        return out, lse

    out, lse = torch.compile(attn, fullgraph=True, backend="aot_eager")(q, k, v)
    assert out.shape == q.shape and lse.shape == (1, 2, 16)
    _, lse_eager = attn(q, k, v)
    assert torch.allclose(lse, lse_eager)


@pytest.mark.parametrize("device", DEVICES)
def test_varlen(device):
    dtype = _dtype(device)
    require_build(device, dtype, 32, backward=True)
    cu = cu_seqlens([3, 17, 10], device)
    q = rand(30, 4, 32, device=device, dtype=dtype)
    k, v = rand(30, 2, 32, device=device, dtype=dtype), rand(30, 2, 32, device=device, dtype=dtype)

    def attn(q, k, v):
        return flash_attn_varlen_func(q, k, v, cu, cu, 17, 17, causal=True, window_size=(4, 0))

    compiled = torch.compile(attn, fullgraph=True, backend="aot_eager")
    for got, expected in zip(_grads(compiled, q, k, v), _grads(attn, q, k, v)):
        assert torch.allclose(got.float(), expected.float(), atol=1e-5 if device == "cpu" else 2e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_kvcache_decode(device):
    """The in-place cache update survives functionalization: the caller's cache is updated."""
    dtype = _dtype(device)
    require_build(device, dtype, 32)
    k_cache = rand(2, 32, 2, 32, device=device, dtype=dtype)
    v_cache = rand(2, 32, 2, 32, device=device, dtype=dtype)
    seqlens = torch.tensor([5, 9], dtype=torch.int32, device=device)

    def step(q, k_new, v_new, k_cache, v_cache):
        return flash_attn_with_kvcache(q, k_cache, v_cache, k_new, v_new, cache_seqlens=seqlens,
                                       causal=True)

    q = rand(2, 1, 4, 32, device=device, dtype=dtype)
    k_new, v_new = rand(2, 1, 2, 32, device=device, dtype=dtype), rand(2, 1, 2, 32, device=device, dtype=dtype)
    k_eager, v_eager = k_cache.clone(), v_cache.clone()
    expected = step(q, k_new, v_new, k_eager, v_eager)
    got = torch.compile(step, fullgraph=True, backend="aot_eager")(q, k_new, v_new, k_cache, v_cache)
    assert torch.equal(got, expected)
    assert torch.equal(k_cache, k_eager) and torch.equal(v_cache, v_eager)
    assert torch.equal(k_cache[0, 5], k_new[0, 0]) and torch.equal(k_cache[1, 9], k_new[1, 0])


def test_same_tensor_as_q_k_v():
    """Self-attention on one tensor (q is k is v): gradients of all three uses add up."""
    x = rand(1, 12, 2, 16)

    def attn(x):
        return flash_attn_func(x, x, x, causal=True)

    def attn_copies(x):
        return flash_attn_func(x, x.clone(), x.clone(), causal=True)

    compiled = torch.compile(attn, fullgraph=True, backend="aot_eager")
    for got, expected in zip(_grads(compiled, x), _grads(attn_copies, x)):
        assert torch.allclose(got, expected, atol=1e-5)
