"""flash_attn_varlen_func and its packed forms (and paged K/V through block_table), forward
and backward, against the fp64 oracle run sequence by sequence."""
import pytest
import torch

from fa_support import DEVICE_DTYPES, cu_seqlens, dtype_id, rand, require_build
from checks import compare, keep_from_s_dmask, leaves, oracle_sequences
from flash_attn import (flash_attn_varlen_func, flash_attn_varlen_kvpacked_func,
                        flash_attn_varlen_qkvpacked_func)

# (lengths_q, lengths_k, h_q, h_k, d): empty sequences, single tokens, s_q != s_k.
SHAPES = [
    ([5, 0, 17, 1], [5, 0, 17, 1], 4, 4, 64),
    ([3, 30, 7], [12, 21, 7], 6, 2, 40),
    ([1, 1, 1], [64, 1, 113], 4, 1, 128),
    ([0, 23], [9, 0], 2, 2, 72),
]
OPTIONS = [
    dict(),
    dict(causal=True),
    dict(window=(6, 0)),
    dict(softcap=4.0, causal=True),
    dict(alibi="h", window=(3, 5)),
    dict(alibi="bh"),
]


def run_varlen(device, dtype, shape, *, causal=False, window=(-1, -1), softcap=0.0, alibi=None,
               dropout_p=0.0, layout="separate", seqlen_as_tensor=False):
    lengths_q, lengths_k, h_q, h_k, d = shape
    require_build(device, dtype, d, backward=True)
    b = len(lengths_q)
    total_q, total_k = sum(lengths_q), sum(lengths_k)
    cu_q, cu_k = cu_seqlens(lengths_q, device), cu_seqlens(lengths_k, device)
    max_q, max_k = max(lengths_q), max(lengths_k)
    if seqlen_as_tensor:
        max_q, max_k = torch.tensor(max_q), torch.tensor(max_k)
    q = rand(total_q, h_q, d, device=device, dtype=dtype)
    k = rand(total_k, h_k, d, device=device, dtype=dtype)
    v = rand(total_k, h_k, d, device=device, dtype=dtype)
    dout = rand(total_q, h_q, d, device=device, dtype=dtype)
    slopes = {None: None, "h": torch.rand(h_q), "bh": torch.rand(b, h_q)}[alibi]
    kwargs = dict(dropout_p=dropout_p, causal=causal, window_size=window, softcap=softcap,
                  alibi_slopes=None if slopes is None else slopes.to(device),
                  return_attn_probs=True)
    if layout == "qkvpacked":
        qkv = torch.stack([q, k, v], dim=1).requires_grad_()
        out, lse, s_dmask = flash_attn_varlen_qkvpacked_func(qkv, cu_q, max_q, **kwargs)
        out.backward(dout)
        dq, dk, dv = qkv.grad.unbind(1)
    elif layout == "kvpacked":
        qg = q.clone().requires_grad_()
        kv = torch.stack([k, v], dim=1).requires_grad_()
        out, lse, s_dmask = flash_attn_varlen_kvpacked_func(qg, kv, cu_q, cu_k, max_q, max_k,
                                                            **kwargs)
        out.backward(dout)
        dq, (dk, dv) = qg.grad, kv.grad.unbind(1)
    else:
        qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
        out, lse, s_dmask = flash_attn_varlen_func(qg, kg, vg, cu_q, cu_k, max_q, max_k, **kwargs)
        out.backward(dout)
        dq, dk, dv = qg.grad, kg.grad, vg.grad
    results = dict(out=out, lse=lse, dq=dq, dk=dk, dv=dv)
    keep = keep_from_s_dmask(s_dmask) if dropout_p > 0 else None
    cq, ck = cu_q.tolist(), cu_k.tolist()

    def reference(ref_dtype):
        lq, lk, lv = leaves(q, k, v, dtype=ref_dtype)
        seqs, douts = [], []
        for i in range(b):
            sq, sk = lengths_q[i], lengths_k[i]
            row_slopes = None if slopes is None else (slopes[i] if slopes.dim() == 2 else slopes)
            seqs.append((lq[cq[i]:cq[i + 1]], lk[ck[i]:ck[i + 1]], lv[ck[i]:ck[i + 1]],
                         None if keep is None else keep[i, :, :sq, :sk], row_slopes))
            douts.append(dout.cpu()[cq[i]:cq[i + 1]])
        outs, lses = oracle_sequences(seqs, douts, dtype=ref_dtype, causal=causal,
                                      window=window, softcap=softcap, dropout_p=dropout_p)
        return dict(out=torch.cat(outs), lse=torch.cat(lses, dim=1), dq=lq.grad, dk=lk.grad,
                    dv=lv.grad)

    return results, reference(torch.float64), reference(dtype)


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_varlen(device, dtype, shape, options):
    results, ref, base = run_varlen(device, dtype, shape, **options)
    compare(results, ref, base, dtype)


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("layout", ["qkvpacked", "kvpacked"])
def test_varlen_packed(device, dtype, layout):
    shape = ([4, 19, 0, 8], [4, 19, 0, 8], 4, 4 if layout == "qkvpacked" else 2, 32)
    results, ref, base = run_varlen(device, dtype, shape, layout=layout, causal=True)
    compare(results, ref, base, dtype)


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES, ids=dtype_id)
def test_varlen_dropout(device, dtype):
    shape = ([13, 40, 2], [20, 33, 9], 4, 2, 64)
    results, ref, base = run_varlen(device, dtype, shape, dropout_p=0.25, causal=True)
    compare(results, ref, base, dtype)


def test_max_seqlen_as_tensor():
    shape = ([7, 3], [7, 3], 2, 2, 16)
    results, ref, base = run_varlen("cpu", torch.float32, shape, seqlen_as_tensor=True)
    compare(results, ref, base, torch.float32)


def _paged(k, lengths, page_size, device):
    """Scatter varlen keys (total, h, d) into shuffled pages; returns (pages, block_table)."""
    b = len(lengths)
    pages_per_seq = max(-(-n // page_size) for n in lengths) or 1
    num_pages = b * pages_per_seq + 3
    order = torch.randperm(num_pages)[: b * pages_per_seq].view(b, pages_per_seq)
    pages = rand(num_pages, page_size, *k.shape[1:], dtype=k.dtype)
    start = 0
    for i, n in enumerate(lengths):
        for j in range(n):
            pages[order[i, j // page_size], j % page_size] = k[start + j].cpu()
        start += n
    return pages.to(device), order.to(torch.int32).to(device)


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("page_size", [1, 16, 256])
@pytest.mark.parametrize("causal", [False, True])
def test_varlen_paged_block_table(device, dtype, page_size, causal):
    lengths_q, lengths_k, h_q, h_k, d = [3, 1, 20], [40, 0, 77], 4, 2, 64
    require_build(device, dtype, d)
    cu_q, cu_k = cu_seqlens(lengths_q, device), cu_seqlens(lengths_k, device)
    q = rand(sum(lengths_q), h_q, d, device=device, dtype=dtype)
    k = rand(sum(lengths_k), h_k, d, device=device, dtype=dtype)
    v = rand(sum(lengths_k), h_k, d, device=device, dtype=dtype)
    torch.manual_seed(page_size)
    k_pages, table = _paged(k, lengths_k, page_size, device)
    torch.manual_seed(page_size)
    v_pages, _ = _paged(v, lengths_k, page_size, device)
    out = flash_attn_varlen_func(q, k_pages, v_pages, cu_q, cu_k, max(lengths_q), max(lengths_k),
                                 causal=causal, block_table=table)
    expected = flash_attn_varlen_func(q, k, v, cu_q, cu_k, max(lengths_q), max(lengths_k),
                                      causal=causal)
    assert torch.allclose(out.float(), expected.float(), atol=1e-5 if dtype == torch.float32
                          else 1e-2)
