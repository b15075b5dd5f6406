"""transformers integration: a tiny random Llama (and a sliding-window Qwen2) attending through
flashplus.ring on a packed batch split over 2 gloo ranks, against each sequence run alone."""
import pytest

from ring_checks import assert_matches_reference

pytest.importorskip("transformers")

LENGTHS = [5, 17, 9, 1]  # 32 packed tokens; rank boundaries fall inside a sequence
ATOL = 2e-5


@pytest.mark.parametrize("attn_implementation", ["flash_attention_2", "flashplus_ring"])
def test_llama_packed_batch(pool_factory, attn_implementation):
    results = pool_factory("gloo", 2).run("hf_cases:llama", lengths=LENGTHS,
                                         attn_implementation=attn_implementation)
    assert_matches_reference(results, ATOL)


def test_sliding_window_model(pool_factory):
    results = pool_factory("gloo", 2).run("hf_cases:llama", lengths=LENGTHS,
                                         attn_implementation="flash_attention_2",
                                         sliding_window=6)
    assert_matches_reference(results, ATOL)


def test_both_names_are_registered(pool_factory):
    names = pool_factory("gloo", 2).run("hf_cases:registered_names")
    assert names == [["flash_attention_2", "flashplus_ring"]] * 2
