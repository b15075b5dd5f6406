"""Hugging Face transformers accepts attn_implementation="flash_attention_2" with this package
installed, and a tiny randomly initialised Llama gives the same logits and gradients as with
"sdpa": padded batches (attention_mask) and packed sequences (position_ids restarting at 0).

transformers gates FA2 on torch.cuda.is_available() (and on the model's parameters being on a
GPU). On a machine without a GPU the `fa2` fixture lifts exactly that gate; the package checks
(distribution name "flash-attn", version >= 2.3.3) still run unmodified. On a GPU nothing is
patched.
"""
import copy

import pytest
import torch

transformers = pytest.importorskip("transformers")

from transformers.utils import import_utils  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if HAS_CUDA else "cpu"
DTYPE = torch.bfloat16 if HAS_CUDA else torch.float32
TOL = dict(atol=3e-2, rtol=3e-2) if HAS_CUDA else dict(atol=2e-5, rtol=2e-5)


@pytest.fixture
def fa2(monkeypatch):
    def clear():
        for name in ("is_flash_attn_2_available", "is_torch_cuda_available"):
            getattr(getattr(import_utils, name), "cache_clear", lambda: None)()

    clear()
    if not HAS_CUDA:
        from transformers import modeling_flash_attention_utils as fa_utils

        monkeypatch.setattr(import_utils, "is_torch_cuda_available", lambda: True)
        matrix = fa_utils.FLASH_ATTENTION_COMPATIBILITY_MATRIX[2]
        monkeypatch.setitem(matrix, "supported_devices",
                            tuple(matrix["supported_devices"]) + ((lambda: True, "cpu"),))
    yield
    monkeypatch.undo()
    clear()


@pytest.fixture
def fa_calls(monkeypatch):
    """Counts flashplus forward calls, proving the flash_attention_2 path really ran."""
    from flashplus import ops

    calls = []
    real = ops.fwd

    def counting(*args, **kwargs):
        calls.append(kwargs.get("cu_seqlens_q") is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, "fwd", counting)
    return calls


def test_availability_check(fa2):
    assert import_utils.is_flash_attn_2_available()
    from importlib.metadata import packages_distributions

    owners = packages_distributions().get("flash_attn", [])
    assert "flash-attn" in [name.replace("_", "-") for name in owners]
    assert import_utils.is_flash_attn_greater_or_equal("2.3.3")


def _models():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                         max_position_embeddings=256, attention_dropout=0.0)
    torch.manual_seed(0)
    models = {}
    for impl in ("sdpa", "flash_attention_2"):  # a config each: the model keeps a reference
        models[impl] = LlamaForCausalLM._from_config(copy.deepcopy(config),
                                                     attn_implementation=impl, dtype=DTYPE)
    models["flash_attention_2"].load_state_dict(models["sdpa"].state_dict())
    for model in models.values():
        model.to(DEVICE)
    assert models["flash_attention_2"].config._attn_implementation == "flash_attention_2"
    assert models["sdpa"].config._attn_implementation == "sdpa"
    return models["sdpa"], models["flash_attention_2"]


def test_padded_batch_logits(fa2, fa_calls):
    sdpa, fa = _models()
    ids = torch.randint(0, 128, (3, 17), device=DEVICE)
    mask = torch.ones(3, 17, dtype=torch.long, device=DEVICE)
    mask[1, :5] = 0   # left padding
    mask[2, 11:] = 0  # right padding
    with torch.no_grad():
        expected = sdpa(input_ids=ids, attention_mask=mask).logits
        got = fa(input_ids=ids, attention_mask=mask).logits
    keep = mask.bool()
    torch.testing.assert_close(got[keep].float(), expected[keep].float(), **TOL)
    assert fa_calls and all(fa_calls), "transformers did not call flash_attn_varlen_func"


def test_packed_sequences_logits(fa2, fa_calls):
    sdpa, fa = _models()
    lengths = [5, 11, 1, 7]
    ids = torch.randint(0, 128, (1, sum(lengths)), device=DEVICE)
    position_ids = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0).to(DEVICE)
    with torch.no_grad():
        got = fa(input_ids=ids, position_ids=position_ids).logits[0]
        pieces, start = [], 0
        for n in lengths:  # each sequence on its own: what packing must reproduce
            pieces.append(sdpa(input_ids=ids[:, start:start + n]).logits[0])
            start += n
    torch.testing.assert_close(got.float(), torch.cat(pieces).float(), **TOL)
    assert fa_calls and all(fa_calls), "packed sequences did not go through the varlen path"


def test_training_step_gradients(fa2, fa_calls):
    from fa_support import require_build

    require_build(DEVICE, DTYPE, 16, backward=True)
    sdpa, fa = _models()
    ids = torch.randint(0, 128, (2, 15), device=DEVICE)
    mask = torch.ones(2, 15, dtype=torch.long, device=DEVICE)
    mask[1, 12:] = 0
    labels = ids.masked_fill(mask == 0, -100)
    grads = []
    for model in (sdpa, fa):
        model.train()
        model.zero_grad()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        grads.append({n: p.grad.float() for n, p in model.named_parameters()})
    assert fa_calls, "transformers did not call flashplus"
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        scale = grads[0][name].abs().max().item() + 1e-12
        err = (grads[1][name] - grads[0][name]).abs().max().item()
        assert err <= (3e-2 if HAS_CUDA else 1e-4) * scale, f"{name}: {err:.3e} vs {scale:.3e}"
