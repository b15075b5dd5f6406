"""flash-attn's private API (flash_attn.flash_attn_interface._flash_attn_*), as tools such as
ring-flash-attn and ms-swift use it: called by keyword, introspected by parameter name (also
through CustomOpDef._init_fn), dq/dk/dv written in place into caller buffers, rng_state reused."""
import inspect

import pytest
import torch

import oracle
from fa_support import DEVICES, cu_seqlens, rand, require_build
from flash_attn import flash_attn_interface as fai

FORWARD_PARAMS = ["q", "k", "v", "dropout_p", "softmax_scale", "causal", "window_size_left",
                  "window_size_right", "softcap", "alibi_slopes", "return_softmax"]
VARLEN_FORWARD_PARAMS = ["q", "k", "v", "cu_seqlens_q", "cu_seqlens_k", "max_seqlen_q",
                         "max_seqlen_k", "dropout_p", "softmax_scale", "causal",
                         "window_size_left", "window_size_right", "softcap", "alibi_slopes",
                         "return_softmax", "block_table", "leftpad_k", "seqused_k",
                         "zero_tensors"]
BACKWARD_PARAMS = ["dout", "q", "k", "v", "out", "softmax_lse", "dq", "dk", "dv", "dropout_p",
                   "softmax_scale", "causal", "window_size_left", "window_size_right", "softcap",
                   "alibi_slopes", "deterministic", "rng_state"]
VARLEN_BACKWARD_PARAMS = ["dout", "q", "k", "v", "out", "softmax_lse", "dq", "dk", "dv",
                          "cu_seqlens_q", "cu_seqlens_k", "max_seqlen_q", "max_seqlen_k",
                          "dropout_p", "softmax_scale", "causal", "window_size_left",
                          "window_size_right", "softcap", "alibi_slopes", "deterministic",
                          "rng_state", "zero_tensors"]
OPS = {
    "_flash_attn_forward": FORWARD_PARAMS,
    "_flash_attn_varlen_forward": VARLEN_FORWARD_PARAMS,
    "_flash_attn_backward": BACKWARD_PARAMS,
    "_flash_attn_varlen_backward": VARLEN_BACKWARD_PARAMS,
}


def default_args(func):
    """How ring-flash-attn reads the defaults: through _init_fn when func is a custom op."""
    func = func if inspect.isfunction(func) else func._init_fn
    spec = inspect.getfullargspec(func)
    defaults = spec.defaults or ()
    return dict(zip(spec.args, (None,) * (len(spec.args) - len(defaults)) + tuple(defaults)))


@pytest.mark.parametrize("name", sorted(OPS))
def test_parameter_names(name):
    op = getattr(fai, name)
    assert list(default_args(op)) == OPS[name]
    assert list(inspect.signature(op).parameters) == OPS[name]
    packet = getattr(torch.ops.flash_attn, name)
    assert [a.name for a in packet.default._schema.arguments] == OPS[name]


def test_wrapped_names_are_the_registered_ops():
    assert fai._wrapped_flash_attn_forward is torch.ops.flash_attn._flash_attn_forward
    assert fai._wrapped_flash_attn_backward is torch.ops.flash_attn._flash_attn_backward
    assert fai._wrapped_flash_attn_varlen_forward is torch.ops.flash_attn._flash_attn_varlen_forward
    assert fai._wrapped_flash_attn_varlen_backward is torch.ops.flash_attn._flash_attn_varlen_backward


def test_varlen_defaults():
    args = default_args(fai._flash_attn_varlen_forward)
    assert args["window_size_left"] == -1 and args["window_size_right"] == -1
    assert args["softcap"] == 0.0 and args["return_softmax"] is False
    assert args["block_table"] is None and args["zero_tensors"] is False


@pytest.mark.parametrize("device", DEVICES)
def test_forward_backward_by_keyword(device):
    """ring-flash-attn's calling convention, with caller-owned gradient buffers (views)."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    require_build(device, dtype, 64, backward=True)
    q = rand(2, 29, 4, 64, device=device, dtype=dtype)
    k, v = rand(2, 31, 2, 64, device=device, dtype=dtype), rand(2, 31, 2, 64, device=device, dtype=dtype)
    out, lse, s_dmask, rng_state = fai._flash_attn_forward(
        q, k, v, dropout_p=0.0, softmax_scale=0.125, causal=True, window_size_left=-1,
        window_size_right=-1, softcap=0.0, alibi_slopes=None, return_softmax=False)
    assert out.shape == q.shape and out.dtype == dtype
    assert lse.shape == (2, 4, 29) and lse.dtype == torch.float32
    assert s_dmask.numel() == 0
    assert rng_state.shape == (2,) and rng_state.dtype == torch.int64

    dout = rand(2, 29, 4, 64, device=device, dtype=dtype)
    dq = torch.full_like(q, float("nan"))
    dkv = torch.full((2, 31, 2, 2, 64), float("nan"), device=device, dtype=dtype)
    softmax_d = fai._flash_attn_backward(
        dout, q, k, v, out, lse, dq, dkv[:, :, 0], dkv[:, :, 1], dropout_p=0.0,
        softmax_scale=0.125, causal=True, window_size_left=-1, window_size_right=-1,
        softcap=0.0, alibi_slopes=None, deterministic=False, rng_state=rng_state)
    assert softmax_d.shape == lse.shape
    expected_d = (dout.float() * out.float()).sum(-1).transpose(1, 2)
    assert torch.allclose(softmax_d, expected_d, atol=1e-2, rtol=1e-3)

    leaves = [t.detach().double().cpu().requires_grad_() for t in (q, k, v)]
    refs = [oracle.attention(leaves[0][i], leaves[1][i], leaves[2][i], scale=0.125,
                             causal=True)[0] for i in range(2)]
    torch.stack(refs).backward(dout.cpu().double())
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    for got, leaf in zip((dq, dkv[:, :, 0], dkv[:, :, 1]), leaves):
        assert oracle.max_err(got.cpu(), leaf.grad) < tol


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_keep_mask_is_philox(device):
    """rng_state = (seed, offset) reproduces the documented Philox keep-mask exactly, and the
    backward reuses it."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    require_build(device, dtype, 32)
    q, k, v = (rand(2, 24, 3, 32, device=device, dtype=dtype) for _ in range(3))
    p = 0.3
    out, lse, s_dmask, rng_state = fai._flash_attn_forward(q, k, v, p, 0.2, False, -1, -1, 0.0,
                                                           None, True)
    seed, offset = [x & (2**64 - 1) for x in rng_state.tolist()]
    for i in range(2):
        keep = oracle.keep_mask(seed, offset, p, i, 3, 24, 24)
        assert torch.equal(keep, ~torch.signbit(s_dmask[i].cpu()))
        ref, _ = oracle.attention(q[i].cpu(), k[i].cpu(), v[i].cpu(), scale=0.2, keep=keep,
                                  dropout_p=p)
        assert oracle.max_err(out[i].cpu(), ref) < (1e-5 if dtype == torch.float32 else 3e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_varlen_forward_with_seqused_and_leftpad(device):
    lengths = [10, 20]
    cu = cu_seqlens(lengths, device)
    q = rand(30, 2, 32, device=device)
    k, v = rand(30, 2, 32, device=device), rand(30, 2, 32, device=device)
    if device == "cuda":
        require_build(device, torch.bfloat16, 32)
        q, k, v = q.bfloat16(), k.bfloat16(), v.bfloat16()
    seqused = torch.tensor([8, 17], dtype=torch.int32, device=device)
    leftpad = torch.tensor([1, 3], dtype=torch.int32, device=device)
    out, lse, _, _ = fai._flash_attn_varlen_forward(
        q, k, v, cu, cu, 20, 20, 0.0, 32 ** -0.5, False, leftpad_k=leftpad, seqused_k=seqused)
    assert lse.shape == (2, 30)
    for i, (start, end) in enumerate([(1, 8), (3, 17)]):
        a, b = cu[i].item(), cu[i + 1].item()
        ref, _ = oracle.attention(q[a:b].cpu(), k[a:b][start:end].cpu(), v[a:b][start:end].cpu())
        assert oracle.max_err(out[a:b].cpu(), ref) < (1e-5 if device == "cpu" else 3e-2)


def test_zero_tensors_and_fake_shapes():
    """The fake (meta) implementations give the real outputs' shapes, dtypes and strides."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    q, k, v = (rand(2, 13, 4, 16) for _ in range(3))
    real = fai._flash_attn_forward(q, k, v, 0.1, 0.25, True, -1, -1, 0.0, None, True)
    cu = cu_seqlens([5, 8])
    real_varlen = fai._flash_attn_varlen_forward(q[0], k[0], v[0], cu, cu, 8, 8, 0.1, 0.25,
                                                 False, return_softmax=True, zero_tensors=True)
    with FakeTensorMode() as mode:
        fq, fk, fv = (mode.from_tensor(t) for t in (q, k, v))
        fcu = mode.from_tensor(cu)
        fake = fai._flash_attn_forward(fq, fk, fv, 0.1, 0.25, True, -1, -1, 0.0, None, True)
        fake_varlen = fai._flash_attn_varlen_forward(fq[0], fk[0], fv[0], fcu, fcu, 8, 8, 0.1,
                                                     0.25, False, return_softmax=True)
    for r, f in list(zip(real, fake)) + list(zip(real_varlen, fake_varlen)):
        assert r.shape == f.shape and r.dtype == f.dtype and r.stride() == f.stride()


@pytest.mark.parametrize("name", ["_flash_attn_forward", "_flash_attn_varlen_forward",
                                  "_flash_attn_backward", "_flash_attn_varlen_backward"])
def test_opcheck(name):
    """torch.library.opcheck: schema, fake implementation and dispatch registrations agree."""
    if not hasattr(torch.library, "opcheck"):
        pytest.skip("torch.library.opcheck needs torch >= 2.4")
    q, k, v = (rand(2, 9, 2, 16) for _ in range(3))
    cu = cu_seqlens([4, 5])
    qv, kv, vv = q[0], k[0], v[0]
    if name == "_flash_attn_forward":
        args = (q, k, v, 0.0, 0.25, True, -1, -1, 0.0, None, False)
    elif name == "_flash_attn_varlen_forward":
        args = (qv, kv, vv, cu, cu, 5, 5, 0.0, 0.25, True)
    elif name == "_flash_attn_backward":
        out, lse, _, rng = fai._flash_attn_forward(q, k, v, 0.0, 0.25, True, -1, -1, 0.0, None, False)
        args = (rand(2, 9, 2, 16), q, k, v, out, lse, torch.empty_like(q), torch.empty_like(k),
                torch.empty_like(v), 0.0, 0.25, True, -1, -1, 0.0, None, False, rng)
    else:
        out, lse, _, rng = fai._flash_attn_varlen_forward(qv, kv, vv, cu, cu, 5, 5, 0.0, 0.25, True)
        args = (rand(9, 2, 16), qv, kv, vv, out, lse, torch.empty_like(qv), torch.empty_like(kv),
                torch.empty_like(vv), cu, cu, 5, 5, 0.0, 0.25, True, -1, -1, 0.0, None, False, rng)
    torch.library.opcheck(getattr(torch.ops.flash_attn, name).default, args,
                          test_utils=("test_schema", "test_faketensor"))
