"""Cases run inside the DistPool workers: every rank builds the same full-sequence inputs,
computes the fp64 reference and the same-precision baseline on the full sequence, runs the
ring function on its shard, and returns {name: (error vs fp64, baseline error vs fp64)} for
out, lse, dq, dk and dv on its own rows (None where this rank is outside the group)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from ring_reference import attention, positions

Metrics = Dict[str, Tuple[float, float]]

DENSE_FUNCS = {"ring": "ring_flash_attn", "zigzag": "zigzag_ring_flash_attn",
               "stripe": "stripe_flash_attn"}
LAYOUT_OF = {"ring": "contiguous", "zigzag": "zigzag", "stripe": "stripe"}


def _device(device: str) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if device == "cuda" else torch.device("cpu")


def _full_inputs(seed: int, q_shape, kv_shape, dtype: torch.dtype, device):
    generator = torch.Generator().manual_seed(seed)
    q, k, v, dout = (torch.randn(shape, generator=generator)
                     for shape in (q_shape, kv_shape, kv_shape, q_shape))
    return [t.to(device) for t in (q, k, v, dout)]


def _reference(full, dtype, **mask):
    """out, lse, dq, dk, dv of attention on the full sequence in `dtype`."""
    q, k, v, dout = (t.to(dtype) for t in full)
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    out, lse = attention(q, k, v, **mask)
    out.backward(dout)
    return [out.detach(), lse.detach(), q.grad, k.grad, v.grad]


def _metrics(ring_values, ref64, base, token_index: torch.Tensor, varlen: bool) -> Metrics:
    metrics = {}
    names = ("out", "lse", "dq", "dk", "dv")
    for name, got, ref, low in zip(names, ring_values, ref64, base):
        dim = (1 if name == "lse" else 0) if varlen else (2 if name == "lse" else 1)
        ref_rows = ref.index_select(dim, token_index)
        low_rows = low.index_select(dim, token_index)
        metrics[name] = ((got.double() - ref_rows).abs().max().item(),
                         (low_rows.double() - ref_rows).abs().max().item())
    return metrics


def _group(group_ranks: Optional[Sequence[int]]):
    if group_ranks is None:
        return None, True
    group = dist.new_group(list(group_ranks))  # collective over the world: every rank calls it
    return group, dist.get_rank() in group_ranks


def _run_ring(fn, local, dout_local, packing: str, backward: bool = True, **kwargs):
    """[out, lse, dq, dk, dv] of the ring function on this rank; [out, lse] without backward."""
    if not backward:
        q, k, v = local
        # Only the requested packing is built: a qkv stack needs h_q == h_k, which GQA cases lack.
        if packing == "kv":
            args = (q, torch.stack([k, v], dim=-3))
        elif packing == "qkv":
            args = (torch.stack([q, k, v], dim=-3),)
        else:
            args = (q, k, v)
        with torch.no_grad():
            out, lse, _ = fn(*args, return_attn_probs=True, **kwargs)
        return [out, lse]
    q, k, v = (t.detach().clone().requires_grad_() for t in local)
    if packing == "kv":
        kv = torch.stack([k, v], dim=-3).detach().requires_grad_()
        out, lse, _ = fn(q, kv, return_attn_probs=True, **kwargs)
        out.backward(dout_local)
        return [out, lse, q.grad, kv.grad.select(-3, 0), kv.grad.select(-3, 1)]
    if packing == "qkv":
        qkv = torch.stack([q, k, v], dim=-3).detach().requires_grad_()
        out, lse, _ = fn(qkv, return_attn_probs=True, **kwargs)
        out.backward(dout_local)
        return [out, lse] + [qkv.grad.select(-3, i) for i in range(3)]
    out, lse, _ = fn(q, k, v, return_attn_probs=True, **kwargs)
    out.backward(dout_local)
    return [out, lse, q.grad, k.grad, v.grad]


def _packed_name(base: str, packing: str) -> str:
    return base + {"none": "_func", "kv": "_kvpacked_func", "qkv": "_qkvpacked_func"}[packing]


def dense(rank: int, world_size: int, variant: str, packing: str = "none", dtype: str = "float32",
          device: str = "cpu", b: int = 2, s_local: int = 12, h: int = 4, h_k: int = 2,
          d: int = 16, causal: bool = False, window: Tuple[int, int] = (-1, -1),
          softcap: float = 0.0, group_ranks: Optional[Sequence[int]] = None,
          seed: int = 0, backward: bool = True) -> Optional[Metrics]:
    from flashplus import ring

    group, member = _group(group_ranks)
    if not member:
        return None
    ring_size = dist.get_world_size(group)
    ring_rank = dist.get_rank(group)
    dtype_ = getattr(torch, dtype)
    dev = _device(device)
    length = s_local * ring_size
    full = _full_inputs(seed, (b, length, h, d), (b, length, h_k, d), dtype_, dev)
    mask = dict(causal=causal, window=window, softcap=softcap)
    ref64 = _reference(full, torch.float64, **mask)
    base = _reference(full, dtype_, **mask)
    index = torch.tensor(positions(LAYOUT_OF[variant], ring_rank, ring_size, length), device=dev)
    q, k, v, dout = (t.to(dtype_).index_select(1, index) for t in full)
    fn = getattr(ring, _packed_name(DENSE_FUNCS[variant], packing))
    got = _run_ring(fn, (q, k, v), dout, packing, backward, causal=causal, window_size=window,
                    softcap=softcap, group=group)
    return _metrics(got, ref64, base, index, varlen=False)


def _varlen_index(layout: str, rank: int, world_size: int, lengths: List[int], device):
    index, start = [], 0
    for n in lengths:
        index += [start + p for p in positions(layout, rank, world_size, n)]
        start += n
    return torch.tensor(index, dtype=torch.long, device=device)


def _cu(lengths: Sequence[int]) -> List[int]:
    cu = [0]
    for n in lengths:
        cu.append(cu[-1] + n)
    return cu


def varlen(rank: int, world_size: int, variant: str, lengths: Sequence[int],
           packing: str = "none", dtype: str = "float32", device: str = "cpu", h: int = 4,
           h_k: int = 2, d: int = 16, causal: bool = False, window: Tuple[int, int] = (-1, -1),
           softcap: float = 0.0, seed: int = 0, backward: bool = True) -> Metrics:
    """ring / zigzag / stripe varlen: every sequence is split over the ranks by the layout."""
    from flashplus import ring

    dtype_ = getattr(torch, dtype)
    dev = _device(device)
    lengths = list(lengths)
    cu = _cu(lengths)
    full = _full_inputs(seed, (cu[-1], h, d), (cu[-1], h_k, d), dtype_, dev)
    mask = dict(causal=causal, window=window, softcap=softcap, cu_seqlens=cu)
    ref64 = _reference(full, torch.float64, **mask)
    base = _reference(full, dtype_, **mask)
    index = _varlen_index(LAYOUT_OF[variant], rank, world_size, lengths, dev)
    q, k, v, dout = (t.to(dtype_).index_select(0, index) for t in full)
    local_cu = torch.tensor([c // world_size for c in cu], dtype=torch.int32, device=dev)
    max_seqlen = max(lengths) // world_size
    fn = getattr(ring, _packed_name(DENSE_FUNCS[variant] + "_varlen", packing))
    packed = {"none": lambda f: lambda q, k, v, **kw: f(q, k, v, local_cu, max_seqlen, **kw),
              "kv": lambda f: lambda q, kv, **kw: f(q, kv, local_cu, max_seqlen, **kw),
              "qkv": lambda f: lambda qkv, **kw: f(qkv, local_cu, max_seqlen, **kw)}[packing](fn)
    got = _run_ring(packed, (q, k, v), dout, packing, backward, causal=causal,
                    window_size=window, softcap=softcap)
    return _metrics(got, ref64, base, index, varlen=True)


def llama3(rank: int, world_size: int, lengths: Sequence[int], heads_k_stride: int = 1,
           dtype: str = "float32", device: str = "cpu", h: int = 4, h_k: int = 2, d: int = 16,
           causal: bool = False, window: Tuple[int, int] = (-1, -1), softcap: float = 0.0,
           seed: int = 0, backward: bool = True) -> Metrics:
    """llama3: the packed batch is cut into equal contiguous slices, ignoring sequence ends."""
    from flashplus import ring

    dtype_ = getattr(torch, dtype)
    dev = _device(device)
    cu = _cu(lengths)
    full = _full_inputs(seed, (cu[-1], h, d), (cu[-1], h_k, d), dtype_, dev)
    mask = dict(causal=causal, window=window, softcap=softcap, cu_seqlens=cu)
    ref64 = _reference(full, torch.float64, **mask)
    base = _reference(full, dtype_, **mask)
    per_rank = cu[-1] // world_size
    index = torch.arange(rank * per_rank, (rank + 1) * per_rank, device=dev)
    q, k, v, dout = (t.to(dtype_).index_select(0, index) for t in full)
    cu_q, cu_k, max_q, max_k, k_slice = ring.llama3_flash_attn_prepare_cu_seqlens(
        torch.tensor(cu, dtype=torch.int32, device=dev), causal, rank, world_size)

    def fn(q, k, v, **kw):
        return ring.llama3_flash_attn_varlen_func(q, k, v, cu_q, cu_k, max_q, max_k,
                                                  heads_k_stride, k_slice, **kw)

    got = _run_ring(fn, (q, k, v), dout, "none", backward, causal=causal, window_size=window,
                    softcap=softcap)
    return _metrics(got, ref64, base, index, varlen=True)
