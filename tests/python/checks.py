"""Helpers that run flashplus and the oracle on the same inputs and compare everything."""
import torch

import oracle


def leaves(*tensors, dtype):
    return [t.detach().cpu().to(dtype).requires_grad_() for t in tensors]


def oracle_sequences(seqs, dout_rows, *, dtype, grads=True, **opts):
    """Runs oracle.attention on each sequence and backpropagates dout.

    seqs: list of (q_rows, k_rows, v_rows, keep, slopes) taken (as differentiable slices) from
    leaf tensors. Returns (outs, lses) lists; gradients land in the leaves."""
    outs, lses = [], []
    for (q, k, v, keep, slopes), dout in zip(seqs, dout_rows):
        out, lse = oracle.attention(q, k, v, keep=keep, slopes=slopes, dtype=dtype, **opts)
        outs.append(out)
        lses.append(lse)
        if grads and out.numel():
            out.backward(dout.to(out.dtype), retain_graph=False)
    return outs, lses


def compare(results, oracle_results, baseline_results, dtype, names=None):
    """results / oracle_results / baseline_results: dicts name -> tensor (CPU)."""
    for name in names or results:
        oracle.assert_close(name, results[name].detach().cpu(), oracle_results[name],
                            baseline_results[name], oracle.ATOL[dtype])


def keep_from_s_dmask(s_dmask):
    """Dropout keep-mask as encoded by S_dmask: dropped probabilities are stored negated."""
    return ~torch.signbit(s_dmask.detach().cpu())
