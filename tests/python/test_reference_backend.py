"""FLASHPLUS_BACKEND=reference (plain torch, for debugging) meets the same oracle, and agrees
with the compiled backend bit-for-bit on the dropout keep-mask."""
import pytest
import torch

import oracle
from checks import compare
from fa_support import DEVICES, rand, require_build
from flash_attn import flash_attn_func
from test_dense import run_dense
from test_kvcache import _oracle, run_kvcache
from test_varlen import run_varlen


@pytest.fixture
def reference(monkeypatch):
    monkeypatch.setenv("FLASHPLUS_BACKEND", "reference")


@pytest.mark.parametrize("options", [dict(causal=True, alibi="bh"), dict(window=(3, 2), softcap=2.0),
                                     dict(dropout_p=0.2, causal=True)], ids=str)
def test_dense(reference, options):
    results, ref, base, _ = run_dense("cpu", torch.bfloat16, (2, 13, 21, 4, 2, 24), **options)
    compare(results, ref, base, torch.bfloat16)


def test_varlen(reference):
    results, ref, base = run_varlen("cpu", torch.float32, ([4, 0, 9], [6, 2, 9], 4, 2, 16),
                                    causal=True)
    compare(results, ref, base, torch.float32)


@pytest.mark.parametrize("case", [dict(s_q=2, s_new=2, causal=True, rotary="interleaved", leftpad=True),
                                  dict(s_q=1, s_new=1, paged=4, batch_idx=False, alibi=True)],
                         ids=str)
def test_kvcache(reference, case):
    r = run_kvcache("cpu", torch.float32, **case)
    out64, lse64 = _oracle(r, torch.float64)
    out32, lse32 = _oracle(r, torch.float32)
    oracle.assert_close("out", r["out"], out64, out32, 1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_identical_to_compiled_backend(device, monkeypatch):
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    require_build(device, dtype, 32)
    q, k, v = (rand(2, 19, 2, 32, device=device, dtype=dtype) for _ in range(3))
    masks = []
    for backend in ("auto", "reference"):
        monkeypatch.setenv("FLASHPLUS_BACKEND", backend)
        torch.manual_seed(3)
        if device == "cuda":
            torch.cuda.manual_seed(3)
        masks.append(flash_attn_func(q, k, v, dropout_p=0.4, return_attn_probs=True)[2])
    assert torch.equal(torch.signbit(masks[0]), torch.signbit(masks[1]))
