"""The public API's signatures, as inspect.signature shows them, equal flash-attn 2.8.3's."""
import inspect

import pytest

import flash_attn
from flash_attn import bert_padding
from flash_attn.layers import rotary

TRAILING = [("dropout_p", 0.0), ("softmax_scale", None), ("causal", False),
            ("window_size", (-1, -1)), ("softcap", 0.0), ("alibi_slopes", None),
            ("deterministic", False), ("return_attn_probs", False)]
REQUIRED = inspect.Parameter.empty

EXPECTED = {
    "flash_attn_func": [("q", REQUIRED), ("k", REQUIRED), ("v", REQUIRED)] + TRAILING,
    "flash_attn_qkvpacked_func": [("qkv", REQUIRED)] + TRAILING,
    "flash_attn_kvpacked_func": [("q", REQUIRED), ("kv", REQUIRED)] + TRAILING,
    "flash_attn_varlen_func": [("q", REQUIRED), ("k", REQUIRED), ("v", REQUIRED),
                               ("cu_seqlens_q", REQUIRED), ("cu_seqlens_k", REQUIRED),
                               ("max_seqlen_q", REQUIRED), ("max_seqlen_k", REQUIRED)]
    + TRAILING + [("block_table", None)],
    "flash_attn_varlen_qkvpacked_func": [("qkv", REQUIRED), ("cu_seqlens", REQUIRED),
                                         ("max_seqlen", REQUIRED)] + TRAILING,
    "flash_attn_varlen_kvpacked_func": [("q", REQUIRED), ("kv", REQUIRED),
                                        ("cu_seqlens_q", REQUIRED), ("cu_seqlens_k", REQUIRED),
                                        ("max_seqlen_q", REQUIRED), ("max_seqlen_k", REQUIRED)]
    + TRAILING,
    "flash_attn_with_kvcache": [
        ("q", REQUIRED), ("k_cache", REQUIRED), ("v_cache", REQUIRED), ("k", None), ("v", None),
        ("rotary_cos", None), ("rotary_sin", None), ("cache_seqlens", None),
        ("cache_batch_idx", None), ("cache_leftpad", None), ("block_table", None),
        ("softmax_scale", None), ("causal", False), ("window_size", (-1, -1)), ("softcap", 0.0),
        ("rotary_interleaved", True), ("alibi_slopes", None), ("num_splits", 0),
        ("return_softmax_lse", False)],
}


def params(fn):
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_public_signature(name):
    assert params(getattr(flash_attn, name)) == EXPECTED[name]
    assert getattr(flash_attn, name) is getattr(flash_attn.flash_attn_interface, name)


def test_helper_modules():
    assert params(bert_padding.unpad_input) == [("hidden_states", REQUIRED),
                                                ("attention_mask", REQUIRED),
                                                ("unused_mask", None)]
    assert params(bert_padding.pad_input) == [("hidden_states", REQUIRED), ("indices", REQUIRED),
                                              ("batch", REQUIRED), ("seqlen", REQUIRED)]
    assert callable(bert_padding.index_first_axis)
    assert callable(bert_padding.index_put_first_axis)
    assert params(rotary.apply_rotary_emb) == [
        ("x", REQUIRED), ("cos", REQUIRED), ("sin", REQUIRED), ("interleaved", False),
        ("inplace", False), ("seqlen_offsets", 0), ("cu_seqlens", None), ("max_seqlen", None)]


def test_version():
    assert flash_attn.__version__.startswith("2.8.3+flashplus")
    import flashplus

    assert flash_attn.__version__ == f"2.8.3+flashplus{flashplus.__version__}"
    assert flashplus.library_version() == flashplus.__version__
