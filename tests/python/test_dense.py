"""flash_attn_func / flash_attn_qkvpacked_func / flash_attn_kvpacked_func, forward and
backward, against the fp64 oracle with flash-attn's tolerance rule."""
import pytest
import torch

from fa_support import DEVICE_DTYPES, dtype_id, rand, require_build
from checks import compare, keep_from_s_dmask, leaves, oracle_sequences
from flash_attn import flash_attn_func, flash_attn_kvpacked_func, flash_attn_qkvpacked_func

# (b, s_q, s_k, h_q, h_k, d): odd sizes, GQA/MQA, s_q > s_k, single tokens.
SHAPES = [
    (2, 17, 17, 4, 4, 64),
    (1, 1, 33, 6, 2, 40),
    (3, 45, 21, 4, 1, 72),
    (2, 64, 113, 2, 2, 128),
    (1, 9, 9, 2, 2, 256),
]
OPTIONS = [
    dict(),
    dict(causal=True),
    dict(window=(5, 2)),
    dict(window=(0, 0)),
    dict(causal=True, window=(8, -1)),
    dict(softcap=3.0),
    dict(alibi="h"),
    dict(alibi="bh", causal=True),
    dict(scale=0.3),
    dict(deterministic=True),
]


def run_dense(device, dtype, shape, *, causal=False, window=(-1, -1), softcap=0.0, alibi=None,
              scale=None, dropout_p=0.0, deterministic=False, layout="separate"):
    b, s_q, s_k, h_q, h_k, d = shape
    require_build(device, dtype, d, backward=True)
    q = rand(b, s_q, h_q, d, device=device, dtype=dtype)
    k = rand(b, s_k, h_k, d, device=device, dtype=dtype)
    v = rand(b, s_k, h_k, d, device=device, dtype=dtype)
    dout = rand(b, s_q, h_q, d, device=device, dtype=dtype)
    slopes = None
    if alibi == "h":
        slopes = torch.rand(h_q, dtype=torch.float32, device=device)
    elif alibi == "bh":
        slopes = torch.rand(b, h_q, dtype=torch.float32, device=device)
    kwargs = dict(dropout_p=dropout_p, softmax_scale=scale, causal=causal, window_size=window,
                  softcap=softcap, alibi_slopes=slopes, deterministic=deterministic,
                  return_attn_probs=True)
    if layout == "qkvpacked":
        qkv = torch.stack([q, k, v], dim=2).requires_grad_()
        out, lse, s_dmask = flash_attn_qkvpacked_func(qkv, **kwargs)
        out.backward(dout)
        dq, dk, dv = qkv.grad.unbind(2)
    elif layout == "kvpacked":
        qg = q.clone().requires_grad_()
        kv = torch.stack([k, v], dim=2).requires_grad_()
        out, lse, s_dmask = flash_attn_kvpacked_func(qg, kv, **kwargs)
        out.backward(dout)
        dq, (dk, dv) = qg.grad, kv.grad.unbind(2)
    else:
        qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
        out, lse, s_dmask = flash_attn_func(qg, kg, vg, **kwargs)
        out.backward(dout)
        dq, dk, dv = qg.grad, kg.grad, vg.grad
    results = dict(out=out, lse=lse, dq=dq, dk=dk, dv=dv)
    keep = keep_from_s_dmask(s_dmask) if dropout_p > 0 else None

    def reference(ref_dtype):
        lq, lk, lv = leaves(q, k, v, dtype=ref_dtype)
        seqs = []
        for i in range(b):
            row_slopes = None if slopes is None else (slopes[i] if slopes.dim() == 2 else slopes)
            seqs.append((lq[i], lk[i], lv[i], None if keep is None else keep[i],
                         None if row_slopes is None else row_slopes.cpu()))
        outs, lses = oracle_sequences(seqs, dout.cpu(), dtype=ref_dtype, scale=scale,
                                      causal=causal, window=window, softcap=softcap,
                                      dropout_p=dropout_p)
        return dict(out=torch.stack(outs), lse=torch.stack(lses), dq=lq.grad, dk=lk.grad,
                    dv=lv.grad)

    return results, reference(torch.float64), reference(dtype), s_dmask


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_flash_attn_func(device, dtype, shape, options):
    if dtype != torch.float32 and shape[-1] == 256 and options:
        pytest.skip("head dim 256 is covered with default options (keeps the CPU suite short)")
    results, ref, base, _ = run_dense(device, dtype, shape, **options)
    compare(results, ref, base, dtype)


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("layout", ["qkvpacked", "kvpacked"])
@pytest.mark.parametrize("options", [dict(), dict(causal=True, softcap=2.0), dict(window=(3, 3))],
                         ids=str)
def test_packed(device, dtype, layout, options):
    shape = (2, 19, 19, 4, 4 if layout == "qkvpacked" else 2, 48)
    results, ref, base, _ = run_dense(device, dtype, shape, layout=layout, **options)
    compare(results, ref, base, dtype)


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("options", [dict(), dict(causal=True, alibi="h"), dict(window=(4, 1))],
                         ids=str)
def test_dropout(device, dtype, options):
    p = 0.17
    shape = (2, 33, 41, 4, 2, 64)
    results, ref, base, s_dmask = run_dense(device, dtype, shape, dropout_p=p, **options)
    compare(results, ref, base, dtype)
    assert s_dmask.shape == (2, 4, 33, 41)
    dropped = torch.signbit(s_dmask) & (s_dmask != 0)
    visible = s_dmask != 0
    rate = dropped.sum().item() / max(visible.sum().item(), 1)
    assert abs(rate - p) < 0.05, f"dropped {rate:.3f} of the visible entries, expected {p}"


def test_dropout_reproducible_with_manual_seed():
    q, k, v = (rand(1, 32, 2, 32) for _ in range(3))
    torch.manual_seed(7)
    a = flash_attn_func(q, k, v, dropout_p=0.5)
    torch.manual_seed(7)
    b = flash_attn_func(q, k, v, dropout_p=0.5)
    c = flash_attn_func(q, k, v, dropout_p=0.5)
    assert torch.equal(a, b)
    assert not torch.equal(b, c)


def test_s_dmask_matches_probabilities():
    """Without dropout flash-attn returns an empty S_dmask; with dropout, |S_dmask| are the
    softmax probabilities."""
    import oracle

    q, k, v = (rand(2, 11, 3, 16) for _ in range(3))
    out, lse, s_dmask = flash_attn_func(q, k, v, causal=True, return_attn_probs=True)
    assert s_dmask.numel() == 0
    out, lse, s_dmask = flash_attn_func(q, k, v, dropout_p=0.3, causal=True,
                                        return_attn_probs=True)
    for i in range(2):
        probs = oracle.probabilities(q[i].double(), k[i].double(), causal=True)
        assert oracle.max_err(s_dmask[i].abs(), probs) < 1e-5


def test_return_conventions():
    q, k, v = (rand(1, 5, 2, 8) for _ in range(3))
    out = flash_attn_func(q, k, v)
    assert isinstance(out, torch.Tensor) and out.shape == q.shape
    res = flash_attn_func(q, k, v, return_attn_probs=True)
    assert isinstance(res, tuple) and len(res) == 3
    assert res[1].shape == (1, 2, 5) and res[1].dtype == torch.float32


def test_deterministic_gradients_bit_identical():
    q, k, v = (rand(2, 37, 4, 64, requires_grad=True) for _ in range(3))
    dout = rand(2, 37, 4, 64)
    grads = []
    for _ in range(2):
        for t in (q, k, v):
            t.grad = None
        flash_attn_func(q, k, v, causal=True, deterministic=True).backward(dout)
        grads.append([t.grad.clone() for t in (q, k, v)])
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_non_contiguous_inputs():
    """Strided views (transposed heads, a last dim with stride != 1) give the same result."""
    base = rand(2, 4, 13, 24)  # (b, h, s, d): heads-major storage
    q = base.transpose(1, 2)  # (b, s, h, d) view, strides not contiguous
    k = rand(2, 13, 4, 24)
    v_t = rand(2, 13, 24, 4).transpose(-1, -2)  # last-dim stride 4: copied by the API
    expected = flash_attn_func(q.contiguous(), k, v_t.contiguous())
    assert torch.equal(flash_attn_func(q, k, v_t), expected)


def test_no_key_visible_rows_give_zero_and_inf_lse():
    q = rand(1, 6, 2, 8)
    k, v = rand(1, 3, 2, 8), rand(1, 3, 2, 8)
    out, lse, _ = flash_attn_func(q, k, v, causal=True, return_attn_probs=True)
    # bottom-right aligned: query i sees keys j <= i + s_k - s_q, so rows 0..2 see none
    assert torch.all(out[:, :3] == 0)
    assert torch.all(torch.isinf(lse[..., :3]) & (lse[..., :3] > 0))


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("d", [1, 20, 36, 100, 200])
def test_odd_head_dims(device, dtype, d):
    """Head dims that no kernel is specialised for: native on CPU, zero-padded on CUDA."""
    results, ref, base, _ = run_dense(device, dtype, (2, 15, 26, 4, 2, d), causal=True)
    compare(results, ref, base, dtype)
