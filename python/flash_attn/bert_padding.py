"""Padding helpers of flash-attn (flash_attn.bert_padding): move between padded (b, s, ...)
batches and the packed (total, ...) layout that the varlen functions take.

unpad_input returns flash-attn 2.8's 5-tuple (x_unpad, indices, cu_seqlens, max_seqlen,
seqused); the gathers are autograd Functions so that gradients flow back into the padded batch
(index_first_axis's backward scatters, index_put_first_axis's backward gathers).
"""
import torch
import torch.nn.functional as F


class IndexFirstAxis(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, indices):
        ctx.save_for_backward(indices)
        ctx.first_axis_dim = input.shape[0]
        return input.reshape(input.shape[0], -1)[indices].reshape(-1, *input.shape[1:])

    @staticmethod
    def backward(ctx, grad_output):
        (indices,) = ctx.saved_tensors
        grad_input = grad_output.new_zeros((ctx.first_axis_dim,) + grad_output.shape[1:])
        grad_input[indices] = grad_output
        return grad_input, None


index_first_axis = IndexFirstAxis.apply


class IndexPutFirstAxis(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, indices, first_axis_dim):
        ctx.save_for_backward(indices)
        output = values.new_zeros((first_axis_dim,) + values.shape[1:])
        output[indices] = values
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (indices,) = ctx.saved_tensors
        return grad_output[indices], None, None


index_put_first_axis = IndexPutFirstAxis.apply


def unpad_input(hidden_states, attention_mask, unused_mask=None):
    """hidden_states (b, s, ...), attention_mask (b, s) bool/int, 1 = token to keep.
    unused_mask (b, s), optional: tokens kept in the packed tensor but not counted as used
    (they get their own rows, and seqused excludes them).
    Returns (hidden_states (total, ...), indices (total,) into the flattened (b * s) rows,
    cu_seqlens (b + 1,) int32, max_seqlen int, seqused (b,) int32)."""
    keep = attention_mask if unused_mask is None else attention_mask + unused_mask
    seqlens = keep.sum(dim=-1, dtype=torch.int32)
    seqused = attention_mask.sum(dim=-1, dtype=torch.int32)
    indices = torch.nonzero(keep.flatten(), as_tuple=False).flatten()
    max_seqlen = int(seqlens.max().item()) if seqlens.numel() else 0
    cu_seqlens = F.pad(torch.cumsum(seqlens, dim=0, dtype=torch.int32), (1, 0))
    flat = hidden_states.reshape(-1, *hidden_states.shape[2:])
    return index_first_axis(flat, indices), indices, cu_seqlens, max_seqlen, seqused


def unpad_input_for_concatenated_sequences(hidden_states, attention_mask_in_length):
    """Like unpad_input for rows that each hold several concatenated sequences.
    attention_mask_in_length (b, s): row i lists the lengths of its sequences, then zeros,
    e.g. [2, 3, 0, 0, 0, 0] for two sequences of 2 and 3 tokens.
    Returns (hidden_states (total, ...), indices, cu_seqlens (n + 1,) int32, max_seqlen int)."""
    length = attention_mask_in_length.sum(dim=-1)
    seqlen = attention_mask_in_length.shape[-1]
    positions = torch.arange(seqlen, device=length.device).expand(length.shape[0], seqlen)
    mask = positions < length.unsqueeze(1)
    lengths = attention_mask_in_length.flatten()
    seqlens = lengths[lengths > 0].to(torch.int32)
    indices = torch.nonzero(mask.flatten(), as_tuple=False).flatten()
    max_seqlen = int(seqlens.max().item()) if seqlens.numel() else 0
    cu_seqlens = F.pad(torch.cumsum(seqlens, dim=0, dtype=torch.int32), (1, 0))
    flat = hidden_states.reshape(-1, *hidden_states.shape[2:])
    return index_first_axis(flat, indices), indices, cu_seqlens, max_seqlen


def pad_input(hidden_states, indices, batch, seqlen):
    """Inverse of unpad_input: hidden_states (total, ...) -> (batch, seqlen, ...), zeros elsewhere."""
    output = index_put_first_axis(hidden_states, indices, batch * seqlen)
    return output.reshape(batch, seqlen, *hidden_states.shape[1:])
