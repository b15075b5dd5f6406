"""flash_attn.layers.rotary.apply_rotary_emb against the oracle's float64 rotary."""
import pytest
import torch

import oracle
from fa_support import cu_seqlens, rand
from flash_attn.layers.rotary import apply_rotary_emb


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("rotary_dim", [32, 16])
@pytest.mark.parametrize("offsets", ["int", "tensor"])
def test_dense(interleaved, rotary_dim, offsets):
    b, s, h, d = 2, 9, 3, 32
    angles = torch.rand(20, rotary_dim // 2) * 6
    cos, sin = angles.cos(), angles.sin()
    x = rand(b, s, h, d, requires_grad=True)
    seqlen_offsets = 4 if offsets == "int" else torch.tensor([0, 7])
    out = apply_rotary_emb(x, cos, sin, interleaved=interleaved, seqlen_offsets=seqlen_offsets)
    starts = [4, 4] if offsets == "int" else [0, 7]
    for i in range(b):
        expected = oracle.rotary(x[i].detach(), cos, sin, torch.arange(s) + starts[i], interleaved)
        assert oracle.max_err(out[i], expected) < 1e-5
    # the backward rotates by the opposite angle: <R x, g> = <x, R^T g>
    g = rand(b, s, h, d)
    (out * g).sum().backward()
    assert torch.allclose((x.grad * x).sum(), (out * g).sum(), atol=1e-3)


def test_varlen_and_inplace():
    lengths = [3, 5]
    cu = cu_seqlens(lengths)
    angles = torch.rand(8, 8)
    cos, sin = angles.cos(), angles.sin()
    x = rand(8, 2, 16)
    expected = torch.cat([oracle.rotary(x[:3], cos, sin, torch.arange(3), False),
                          oracle.rotary(x[3:], cos, sin, torch.arange(5), False)])
    out = apply_rotary_emb(x, cos, sin, cu_seqlens=cu, max_seqlen=5, inplace=True)
    assert out.data_ptr() == x.data_ptr()
    assert oracle.max_err(x, expected) < 1e-5


def test_positions_past_cos_are_unrotated():
    cos, sin = torch.rand(4, 4), torch.rand(4, 4)
    x = rand(1, 6, 1, 8, dtype=torch.bfloat16)
    out = apply_rotary_emb(x, cos, sin)
    assert torch.equal(out[:, 4:], x[:, 4:])
    assert out.dtype == torch.bfloat16
