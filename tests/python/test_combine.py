"""flashplus.ops.combine (flashplus_combine): merging attention over disjoint key sets by LSE
equals attention over all keys; infinite LSEs contribute nothing; in place works."""
import pytest
import torch

import oracle
from fa_support import DEVICE_DTYPES, dtype_id, rand, require_build
from flash_attn import flash_attn_func
from flashplus import ops
from flashplus._torch_library import combine as combine_op


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES, ids=dtype_id)
def test_combine_matches_full_attention(device, dtype):
    require_build(device, dtype, 32)
    q = rand(2, 7, 4, 32, device=device, dtype=dtype)
    k, v = rand(2, 50, 4, 32, device=device, dtype=dtype), rand(2, 50, 4, 32, device=device, dtype=dtype)
    parts = [flash_attn_func(q, k[:, a:b], v[:, a:b], return_attn_probs=True)
             for a, b in ((0, 13), (13, 31), (31, 50))]
    out, lse = ops.combine([p[0] for p in parts], [p[1] for p in parts])
    full, full_lse, _ = flash_attn_func(q, k, v, return_attn_probs=True)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert oracle.max_err(out, full) < tol
    assert oracle.max_err(lse, full_lse) < 1e-4
    op_out, op_lse = combine_op([p[0] for p in parts], [p[1] for p in parts])
    assert torch.equal(op_out, out) and torch.equal(op_lse, lse)


def test_infinite_lse_and_in_place():
    out_a, out_b = rand(1, 3, 2, 8), rand(1, 3, 2, 8)
    lse_a = torch.full((1, 2, 3), float("inf"))
    lse_b = rand(1, 2, 3)
    expected_out = out_b.clone()
    out, lse = ops.combine([out_a, out_b], [lse_a, lse_b], out=out_a, lse=lse_a)
    assert out.data_ptr() == out_a.data_ptr()
    assert torch.allclose(out_a, expected_out, atol=1e-6) and torch.allclose(lse_a, lse_b)
    none_out, none_lse = ops.combine([rand(1, 3, 2, 8)], [torch.full((1, 2, 3), float("-inf"))])
    assert torch.all(none_out == 0) and torch.all(torch.isinf(none_lse) & (none_lse > 0))


def test_mismatched_partials():
    with pytest.raises(ValueError, match="partials"):
        ops.combine([rand(1, 3, 2, 8)], [])
