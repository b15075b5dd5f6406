"""flash_attn.bert_padding: unpad/pad round trips, the 5-tuple, gradients through gathers."""
import torch

from fa_support import rand
from flash_attn.bert_padding import (index_first_axis, index_put_first_axis, pad_input,
                                     unpad_input, unpad_input_for_concatenated_sequences)


def test_unpad_pad_round_trip():
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    x = rand(3, 5, 2, 4, requires_grad=True)
    x_unpad, indices, cu, max_seqlen, seqused = unpad_input(x, mask)
    assert x_unpad.shape == (9, 2, 4)
    assert cu.dtype == torch.int32 and cu.tolist() == [0, 3, 4, 9]
    assert max_seqlen == 5 and isinstance(max_seqlen, int)
    assert seqused.tolist() == [3, 1, 5]
    assert indices.tolist() == [0, 1, 2, 5, 10, 11, 12, 13, 14]
    back = pad_input(x_unpad, indices, 3, 5)
    assert torch.equal(back, x * mask[..., None, None])
    back.sum().backward()
    assert torch.equal(x.grad, mask[..., None, None].float().expand_as(x))


def test_unused_mask():
    mask = torch.tensor([[1, 1, 0, 0]])
    unused = torch.tensor([[0, 0, 1, 0]])
    x = rand(1, 4, 3)
    x_unpad, indices, cu, max_seqlen, seqused = unpad_input(x, mask, unused)
    assert cu.tolist() == [0, 3] and seqused.tolist() == [2] and max_seqlen == 3
    assert torch.equal(x_unpad, x[0, :3])


def test_index_helpers_gradients():
    x = rand(6, 3, requires_grad=True)
    idx = torch.tensor([4, 0, 2])
    picked = index_first_axis(x, idx)
    assert torch.equal(picked, x[idx])
    picked.sum().backward()
    assert x.grad.sum(1).tolist() == [3, 0, 3, 0, 3, 0]
    values = rand(3, 2, requires_grad=True)
    placed = index_put_first_axis(values, idx, 6)
    assert placed.shape == (6, 2) and torch.equal(placed[idx], values)
    (placed * torch.arange(6.0).view(6, 1)).sum().backward()
    assert values.grad[:, 0].tolist() == [4.0, 0.0, 2.0]


def test_unpad_concatenated_sequences():
    lengths = torch.tensor([[2, 3, 0, 0, 0, 0], [6, 0, 0, 0, 0, 0]])
    x = rand(2, 6, 4)
    x_unpad, indices, cu, max_seqlen = unpad_input_for_concatenated_sequences(x, lengths)
    assert cu.tolist() == [0, 2, 5, 11] and max_seqlen == 6
    assert x_unpad.shape == (11, 4) and torch.equal(x_unpad[:5], x[0, :5])
