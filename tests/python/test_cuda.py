"""GPU-only behaviour: CUDA-graph capture of KV-cache decoding, dropout bit-identical to the
CPU backend, non-default streams, and the build hint on a request no kernel implements.
Every test skips without a GPU."""
import pytest
import torch

from fa_support import rand, require_build, requires_cuda
from flash_attn import flash_attn_func, flash_attn_with_kvcache
from flashplus import ops

pytestmark = requires_cuda


# Both half dtypes, each where the build has it: the fp16 and bf16 presets each run one.
HALF_DTYPES = [torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_cuda_graph_kvcache_decode(dtype):
    require_build("cuda", dtype, 128)
    torch.manual_seed(0)
    b, h, h_k, d, s_cache = 2, 8, 2, 128, 512
    k_initial = torch.randn(b, s_cache, h_k, d, device="cuda", dtype=dtype)
    v_initial = torch.randn_like(k_initial)
    k_cache, v_cache = k_initial.clone(), v_initial.clone()
    seqlens = torch.tensor([3, 40], dtype=torch.int32, device="cuda")
    q = torch.randn(b, 1, h, d, device="cuda", dtype=dtype)
    k_new = torch.randn(b, 1, h_k, d, device="cuda", dtype=dtype)
    v_new = torch.randn_like(k_new)

    def step():
        return flash_attn_with_kvcache(q, k_cache, v_cache, k_new, v_new, cache_seqlens=seqlens,
                                       causal=True)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the graph, as CUDA graphs require
        step()
    torch.cuda.current_stream().wait_stream(side)
    k_cache.copy_(k_initial)  # undo the warm-up's append
    v_cache.copy_(v_initial)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()

    k_ref, v_ref, lens_ref = k_cache.clone(), v_cache.clone(), seqlens.clone()
    for _ in range(5):
        for t in (q, k_new, v_new):
            t.copy_(torch.randn_like(t))
        expected = flash_attn_with_kvcache(q, k_ref, v_ref, k_new, v_new, cache_seqlens=lens_ref,
                                           causal=True)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, expected)
        assert torch.equal(k_cache, k_ref) and torch.equal(v_cache, v_ref)
        seqlens += 1
        lens_ref += 1


@pytest.mark.parametrize("num_splits", [0, 7])
def test_cuda_graph_split_kv_combine(num_splits):
    """Split-KV decode (split kernel + combine kernel, the combine launched early on sm90 with
    programmatic dependent launch) captured in a graph and replayed on fresh inputs each time:
    every replay must match the fp64 oracle by the flash-attn rule, so a combine that read the
    partials before the split kernel had written them would fail here (stale partials are the
    previous replay's)."""
    import oracle

    require_build("cuda", torch.bfloat16, 128)
    b, h, h_k, d, s_cache = 2, 8, 2, 128, 3000
    dtype = torch.bfloat16
    seqlens = torch.tensor([2999, 1234], dtype=torch.int32, device="cuda")
    q = torch.empty(b, 1, h, d, device="cuda", dtype=dtype)
    k_cache = torch.empty(b, s_cache, h_k, d, device="cuda", dtype=dtype)
    v_cache = torch.empty_like(k_cache)
    for t in (q, k_cache, v_cache):
        t.copy_(rand(*t.shape))

    def step():
        return flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=seqlens, num_splits=num_splits,
                                       return_softmax_lse=True)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out, lse = step()

    for replay in range(3):
        for t in (q, k_cache, v_cache):
            t.copy_(rand(*t.shape))
        out.fill_(float("nan"))  # poison: the combine must write every element
        lse.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        for i in range(b):
            n = int(seqlens[i])
            args = (q[i].cpu(), k_cache[i, :n].cpu(), v_cache[i, :n].cpu())
            want, want_lse = oracle.attention(*args)
            base, _ = oracle.attention(*args, dtype=dtype)
            oracle.assert_close(f"out[{i}] replay {replay}", out[i].cpu(), want, base, oracle.ATOL[dtype])
            lse_err = (lse[i].cpu().double() - want_lse).abs().max().item()
            assert lse_err < 1e-3, f"lse[{i}] replay {replay}: error {lse_err:.3g}"


def test_split_kv_combine_same_with_and_without_dependent_launch(monkeypatch):
    """FLASHPLUS_COMBINE_PDL=0 launches the split-KV combine the plain way; the kernels and their
    inputs are the same, so out and lse must be bit-identical either way (an early combine that
    read partials before the split kernel wrote them would differ)."""
    require_build("cuda", torch.bfloat16, 128)
    b, h, h_k, d, s_cache = 3, 16, 2, 128, 5000
    q = rand(b, 1, h, d, device="cuda", dtype=torch.bfloat16)
    k_cache = rand(b, s_cache, h_k, d, device="cuda", dtype=torch.bfloat16)
    v_cache = rand(b, s_cache, h_k, d, device="cuda", dtype=torch.bfloat16)
    seqlens = torch.tensor([4999, 17, 2500], dtype=torch.int32, device="cuda")
    results = {}
    for pdl in ("1", "0"):
        monkeypatch.setenv("FLASHPLUS_COMBINE_PDL", pdl)
        for num_splits in (0, 9):
            out, lse = flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=seqlens,
                                               num_splits=num_splits, return_softmax_lse=True)
            results[pdl, num_splits] = (out.clone(), lse.clone())
    for num_splits in (0, 9):
        (out1, lse1), (out0, lse0) = results["1", num_splits], results["0", num_splits]
        assert not torch.isnan(out1).any() and not torch.isnan(lse1).any()
        assert torch.equal(out1, out0), f"num_splits={num_splits}: out differs with PDL"
        assert torch.equal(lse1, lse0), f"num_splits={num_splits}: lse differs with PDL"


@pytest.mark.parametrize("varlen", [False, True])
def test_dropout_mask_identical_to_cpu(varlen):
    require_build("cuda", torch.bfloat16, 64)
    q, k, v = (rand(2, 45, 4, 64, dtype=torch.bfloat16) for _ in range(3))
    seed, offset, p = 0x1234_5678_9ABC_DEF0, 8, 0.3
    results = []
    for device in ("cpu", "cuda"):
        qd, kd, vd = (t.to(device) for t in (q, k, v))
        if varlen:
            cu = torch.tensor([0, 45, 90], dtype=torch.int32, device=device)
            res = ops.fwd(qd.flatten(0, 1), kd.flatten(0, 1), vd.flatten(0, 1), cu_seqlens_q=cu,
                          cu_seqlens_k=cu, max_seqlen_q=45, max_seqlen_k=45, dropout_p=p,
                          philox_seed=seed, philox_offset=offset, return_s_dmask=True)
        else:
            res = ops.fwd(qd, kd, vd, dropout_p=p, philox_seed=seed, philox_offset=offset,
                          return_s_dmask=True, causal=True)
        results.append(res)
    cpu, gpu = results
    assert torch.equal(torch.signbit(cpu.s_dmask), torch.signbit(gpu.s_dmask.cpu()))
    assert torch.allclose(cpu.out.float(), gpu.out.float().cpu(), atol=2e-2)


def test_non_default_stream():
    require_build("cuda", torch.bfloat16, 64)
    q, k, v = (rand(2, 300, 4, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    expected = flash_attn_func(q, k, v, causal=True)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        got = flash_attn_func(q, k, v, causal=True)
    torch.cuda.current_stream().wait_stream(stream)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("d", [20, 36, 100])
def test_head_dims_padded_to_multiple_of_8(d):
    require_build("cuda", torch.bfloat16, d, backward=True)
    q, k, v = (rand(2, 33, 2, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    out = flash_attn_func(q, k, v, causal=True)
    assert out.shape == q.shape
    out.sum().backward()
    assert q.grad.shape == q.shape and k.grad.shape == k.shape
    cpu = [t.detach().float().cpu().requires_grad_() for t in (q, k, v)]
    ref = flash_attn_func(*cpu, causal=True)
    ref.sum().backward()
    assert torch.allclose(out.float().cpu(), ref, atol=3e-2)
    assert torch.allclose(q.grad.float().cpu(), cpu[0].grad, atol=5e-2)


def test_unsupported_request_names_the_build():
    """fp32 has no CUDA kernel: the error says what was built and how to build more."""
    q = rand(1, 8, 2, 64, device="cuda")
    with pytest.raises(RuntimeError) as info:
        flash_attn_func(q, q, q)
    message = str(info.value)
    assert "float32" in message or "dtype" in message


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_bad_block_table_entry_is_reported_and_nan(dtype):
    """A block_table entry past num_blocks on CUDA: no out-of-bounds read, the affected sequence's
    output is NaN, the other sequence is exact, and take_index_errors names block_table."""
    import flashplus
    b, h, h_k, d, page, blocks = 2, 4, 2, 64, 16, 4
    require_build("cuda", dtype, d)
    torch.manual_seed(3)
    num_blocks = b * blocks
    k_cache = torch.randn(num_blocks, page, h_k, d, device="cuda", dtype=dtype)
    v_cache = torch.randn_like(k_cache)
    table = torch.arange(num_blocks, dtype=torch.int32, device="cuda").reshape(b, blocks)
    seqlens = torch.tensor([50, 37], dtype=torch.int32, device="cuda")
    q = torch.randn(b, 1, h, d, device="cuda", dtype=dtype)
    flashplus.take_index_errors()  # clear what earlier tests left
    good = flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=seqlens, block_table=table)
    assert flashplus.take_index_errors() == []
    bad_table = table.clone()
    bad_table[1, 0] = num_blocks + 100
    out = flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=seqlens, block_table=bad_table)
    errors = flashplus.take_index_errors()
    assert len(errors) == 1 and errors[0].startswith("block_table"), errors
    assert torch.equal(out[0], good[0])
    assert torch.isnan(out[1]).all()
    with pytest.raises(flashplus.InvalidArgumentError, match="block_table"):
        flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=seqlens, block_table=bad_table)
        flashplus.check_index_errors()
