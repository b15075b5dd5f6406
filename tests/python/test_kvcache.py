"""flash_attn_with_kvcache: in-place append (with rotary), cache_batch_idx, leftpad, paged
caches, masks, num_splits, LSE; against the fp64 oracle."""
import pytest
import torch

import oracle
from fa_support import DEVICE_DTYPES, DEVICES, dtype_id, rand, require_build
from flash_attn import flash_attn_with_kvcache

CASES = [
    dict(),
    dict(s_q=1, s_new=1, causal=True),
    dict(s_q=3, s_new=3, causal=True, rotary="interleaved"),
    dict(s_q=2, s_new=2, rotary="neox", rotary_dim=32),
    dict(s_q=1, s_new=0, window=(7, 0)),
    dict(s_q=4, s_new=4, causal=True, leftpad=True),
    dict(s_q=1, s_new=1, batch_idx=True, causal=True, softcap=3.0),
    dict(s_q=1, s_new=1, alibi=True, num_splits=3),
    dict(s_q=1, s_new=1, causal=True, num_splits=1, seqlens_int=True),
    dict(s_q=2, s_new=2, paged=16, causal=True, rotary="interleaved"),
    dict(s_q=1, s_new=1, paged=5, leftpad=True),
    dict(s_q=5, s_new=0, paged=256, causal=True),
    # V pages a different stride apart than K pages: the loaders that share one row table between
    # K and V must not serve it (CUDA: the general gather).
    dict(s_q=1, s_new=1, paged=16, causal=True, v_page_pad=3),
]


def run_kvcache(device, dtype, *, b=3, s_q=1, s_new=1, h_q=4, h_k=2, d=64, s_cache=70,
                causal=False, window=(-1, -1), softcap=0.0, alibi=False, rotary=None,
                rotary_dim=None, leftpad=False, batch_idx=False, paged=None, num_splits=0,
                seqlens_int=False, v_page_pad=0):
    require_build(device, dtype, d)
    b_cache = b + 2 if batch_idx else b
    k_cache = rand(b_cache, s_cache, h_k, d, dtype=dtype)
    v_cache = rand(b_cache, s_cache, h_k, d, dtype=dtype)
    q = rand(b, s_q, h_q, d, dtype=dtype)
    k_new = rand(b, s_new, h_k, d, dtype=dtype) if s_new else None
    v_new = rand(b, s_new, h_k, d, dtype=dtype) if s_new else None
    pad = torch.randint(0, 9, (b,), dtype=torch.int32) if leftpad else torch.zeros(b, dtype=torch.int32)
    if seqlens_int:
        seqlens = torch.full((b,), 41, dtype=torch.int32)
    else:
        seqlens = torch.stack([torch.randint(int(p) + 1, s_cache - s_new + 1, ()) for p in pad])
        seqlens = seqlens.to(torch.int32)
    idx = torch.randperm(b_cache)[:b].to(torch.int32) if batch_idx else torch.arange(b, dtype=torch.int32)
    slopes = torch.rand(h_q) if alibi else None
    cos = sin = None
    if rotary:
        rd = rotary_dim or d
        angles = torch.rand(s_cache, rd // 2) * 6.28
        cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)

    # Expected caches after the append, and the keys each query sees.
    exp_k, exp_v = k_cache.clone(), v_cache.clone()
    local = causal or window != (-1, -1)
    queries, seqs = [], []
    for i in range(b):
        c, e, lp = int(seqlens[i]), int(idx[i]), int(pad[i])
        if s_new:
            kn = k_new[i]
            if rotary:
                kn = oracle.rotary(kn, cos, sin, torch.arange(c, c + s_new), rotary == "interleaved")
            exp_k[e, c:c + s_new] = kn.to(dtype)
            exp_v[e, c:c + s_new] = v_new[i]
        qi = q[i]
        if rotary:
            pos = torch.arange(c, c + s_q) if local else torch.full((s_q,), c)
            qi = oracle.rotary(qi, cos, sin, pos, rotary == "interleaved")
        queries.append(qi)
        seqs.append((exp_k[e, lp:c + s_new], exp_v[e, lp:c + s_new]))

    # The caches handed to flashplus: dense, or scattered into shuffled pages.
    table = None
    if paged:
        pages_per_seq = -(-s_cache // paged)
        order = torch.randperm(b_cache * pages_per_seq + 2)[: b_cache * pages_per_seq]
        table = order.view(b_cache, pages_per_seq)[idx.long()].to(torch.int32)

        def to_pages(cache, pad_rows=0):
            # pad_rows: each page is a view into pages of paged + pad_rows rows (a larger page stride).
            pages = rand(b_cache * pages_per_seq + 2, paged + pad_rows, h_k, d, dtype=dtype)[:, :paged]
            padded = torch.zeros(b_cache, pages_per_seq * paged, h_k, d, dtype=dtype)
            padded[:, :s_cache] = cache
            pages[order] = padded.view(b_cache * pages_per_seq, paged, h_k, d)
            return pages

        def from_pages(pages):
            full = pages[order].view(b_cache, pages_per_seq * paged, h_k, d)[:, :s_cache]
            return full[idx.long()]

        k_in, v_in = to_pages(k_cache), to_pages(v_cache, v_page_pad)
        exp_k, exp_v = exp_k[idx.long()], exp_v[idx.long()]
    else:
        k_in, v_in = k_cache.clone(), v_cache.clone()

    def dev(t):
        return None if t is None else t.to(device)

    k_dev, v_dev = dev(k_in), dev(v_in)
    if v_page_pad:  # .to(device) keeps the view's strides only on the same device: rebuild them
        v_dev = torch.empty(v_in.shape[0], paged + v_page_pad, h_k, d, dtype=dtype, device=device)[:, :paged]
        v_dev.copy_(v_in)
        assert v_dev.stride(0) != k_dev.stride(0)
    out, lse = flash_attn_with_kvcache(
        dev(q), k_dev, v_dev, dev(k_new), dev(v_new), rotary_cos=dev(cos), rotary_sin=dev(sin),
        cache_seqlens=41 if seqlens_int else dev(seqlens),
        cache_batch_idx=dev(idx) if batch_idx and not paged else None,
        cache_leftpad=dev(pad) if leftpad else None, block_table=dev(table),
        causal=causal, window_size=window, softcap=softcap, alibi_slopes=dev(slopes),
        rotary_interleaved=rotary == "interleaved", num_splits=num_splits,
        return_softmax_lse=True)
    k_after, v_after = k_dev.cpu(), v_dev.cpu()
    if paged:
        k_after, v_after = from_pages(k_after), from_pages(v_after)
    return dict(out=out.cpu(), lse=lse.cpu(), k_after=k_after, v_after=v_after, exp_k=exp_k,
                exp_v=exp_v, queries=queries, seqs=seqs, slopes=slopes, causal=causal,
                window=window, softcap=softcap)


def _oracle(r, ref_dtype):
    outs, lses = [], []
    for qi, (ki, vi) in zip(r["queries"], r["seqs"]):
        qi = qi.to(ref_dtype) if ref_dtype == torch.float64 else qi.to(r["out"].dtype)
        o, l = oracle.attention(qi, ki, vi, causal=r["causal"], window=r["window"],
                                softcap=r["softcap"], slopes=r["slopes"], dtype=ref_dtype)
        outs.append(o)
        lses.append(l)
    return torch.stack(outs), torch.stack(lses)


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_kvcache(device, dtype, case):
    r = run_kvcache(device, dtype, **case)
    # The append is exact, up to the rounding of the rotated keys (float32 arithmetic, then
    # one rounding to the cache's dtype).
    expected = r["exp_k"].double()
    diff = (r["k_after"].double() - expected).abs()
    if case.get("rotary"):
        eps = torch.finfo(dtype).eps
        assert torch.all(diff <= eps * expected.abs() + 1e-6 * expected.abs().max())
    else:
        assert torch.all(diff == 0)
    assert torch.equal(r["v_after"], r["exp_v"])
    out64, lse64 = _oracle(r, torch.float64)
    out_lo, lse_lo = _oracle(r, dtype)
    oracle.assert_close("out", r["out"], out64, out_lo, oracle.ATOL[dtype])
    oracle.assert_close("lse", r["lse"], lse64, lse_lo, 1e-4)


def test_return_conventions_and_int_seqlens():
    q = rand(2, 1, 4, 32)
    k_cache, v_cache = rand(2, 16, 4, 32), rand(2, 16, 4, 32)
    out = flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=7)
    assert isinstance(out, torch.Tensor) and out.shape == q.shape
    out2, lse = flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=7,
                                        return_softmax_lse=True)
    assert torch.equal(out, out2) and lse.shape == (2, 4, 1)
    expected = flash_attn_with_kvcache(q, k_cache[:, :7].contiguous(), v_cache[:, :7].contiguous())
    assert torch.allclose(out, expected, atol=1e-6)


def test_num_splits_agree():
    q = rand(2, 1, 8, 64)
    k_cache, v_cache = rand(2, 300, 2, 64), rand(2, 300, 2, 64)
    seqlens = torch.tensor([299, 150], dtype=torch.int32)
    outs = [flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=seqlens, num_splits=n)
            for n in (0, 1, 2, 7)]
    for o in outs[1:]:
        assert torch.allclose(o, outs[0], atol=1e-5)


def _append_step(device, dtype=torch.bfloat16):
    """Caches, one new token per sequence, and the call that appends it (eager path)."""
    require_build(device, dtype, 64)
    q = rand(2, 1, 4, 64, device=device, dtype=dtype)
    k_cache, v_cache = (rand(2, 40, 2, 64, device=device, dtype=dtype) for _ in range(2))
    k_new, v_new = (rand(2, 1, 2, 64, device=device, dtype=dtype) for _ in range(2))
    seqlens = torch.tensor([5, 30], dtype=torch.int32, device=device)
    return q, k_cache, v_cache, k_new, v_new, seqlens


@pytest.mark.parametrize("device", DEVICES)
def test_eager_append_matches_the_op_and_bumps_versions(device):
    """Eager calls skip the dispatcher (_torch_library.eager) but keep what it gives: the same
    result as the registered op, and the version-counter bump of the caches it writes."""
    from flashplus import _torch_library
    q, k_cache, v_cache, k_new, v_new, seqlens = _append_step(device)
    k_op, v_op = k_cache.clone(), v_cache.clone()
    versions = (k_cache._version, v_cache._version)
    out, lse = flash_attn_with_kvcache(q, k_cache, v_cache, k_new, v_new, cache_seqlens=seqlens,
                                       causal=True, return_softmax_lse=True)
    assert k_cache._version > versions[0] and v_cache._version > versions[1]
    out_op, lse_op = _torch_library.fwd_kvcache(
        q, k_op, v_op, k_new, v_new, None, None, seqlens, None, None, None, None, 64 ** -0.5,
        True, -1, 0, 0.0, True, 0)
    assert torch.equal(out, out_op) and torch.equal(lse, lse_op)
    assert torch.equal(k_cache, k_op) and torch.equal(v_cache, v_op)
    # Without new keys nothing is written, and nothing is bumped.
    versions = (k_cache._version, v_cache._version)
    flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=seqlens)
    assert (k_cache._version, v_cache._version) == versions


@pytest.mark.parametrize("device", DEVICES)
def test_autograd_sees_the_cache_append(device):
    """A cache that another op saved for backward and then got appended to: backward refuses,
    as it does after any in-place change, instead of computing with the new contents."""
    q, k_cache, v_cache, k_new, v_new, seqlens = _append_step(device)
    weight = torch.randn(k_cache.shape, device=device, dtype=k_cache.dtype, requires_grad=True)
    loss = (weight * k_cache).sum()  # saves k_cache for weight's gradient
    flash_attn_with_kvcache(q, k_cache, v_cache, k_new, v_new, cache_seqlens=seqlens)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("device", DEVICES)
def test_append_under_inference_mode(device):
    """Inference tensors have no version counter; the eager append must not need one."""
    with torch.inference_mode():
        q, k_cache, v_cache, k_new, v_new, seqlens = _append_step(device)
        before = k_cache.clone()
        flash_attn_with_kvcache(q, k_cache, v_cache, k_new, v_new, cache_seqlens=seqlens)
        assert torch.equal(k_cache[0, 5], k_new[0, 0]) and torch.equal(k_cache[1, 30], k_new[1, 0])
        assert torch.equal(k_cache[0, :5], before[0, :5])
