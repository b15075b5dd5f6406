#!/usr/bin/env python3
"""ncu_workload.py — a small, fixed flashplus workload for Nsight Compute. Default: one forward and
one backward at d = 128, s = 4096 (b = 4, h = 16, bf16), plus one decode call (b = 1, 8k context,
GQA 8:1), each after a warm-up. tools/ncu_profile.sh runs it under ncu.

NCU_SHAPES picks other dense shapes: "b,s,h,d[,c]" entries separated by spaces (c: causal), e.g.
NCU_SHAPES="32,512,16,128 4,4096,16,128" to compare a short-sequence forward with a long one.
NCU_PEERS=1 also runs torch SDPA's FLASH backend (FA2) on each shape (profile its kernels with
NCU_KERNELS="regex:fwd_kernel|flash_fwd|flash_bwd"); NCU_PAGED=1 adds a paged decode call (b = 64,
8k context, page size 16) and the same decode with contiguous K/V. NCU_DECODE="b,ctx ..." runs only
decode calls (32 query heads, 4 KV heads, d = 128, contiguous), each twice (the second is the one to
profile: warm caches and code), and with NCU_PEERS=1 SDPA's on the same cache after each.
Usage (device): FLASHPLUS_LIBRARY=... PYTHONPATH=python python3 tools/ncu_workload.py"""
import os

import torch

from flash_attn import flash_attn_func, flash_attn_with_kvcache


def shapes():
    text = os.environ.get("NCU_SHAPES", "")
    if not text:
        return [(4, 4096, 16, 128, False), (4, 4096, 16, 128, True)]
    out = []
    for entry in text.split():
        parts = [int(x) for x in entry.split(",")]
        out.append((*parts[:4], bool(parts[4]) if len(parts) > 4 else False))
    return out


def decode_only(text, dev, dt):
    for entry in text.split():
        b, ctx = (int(x) for x in entry.split(","))
        q = torch.randn(b, 1, 32, 128, device=dev, dtype=dt)
        kc = torch.randn(b, ctx, 4, 128, device=dev, dtype=dt)
        vc = torch.randn_like(kc)
        lens = torch.full((b,), ctx, dtype=torch.int32, device=dev)
        for _ in range(2):
            flash_attn_with_kvcache(q, kc, vc, cache_seqlens=lens)
            if os.environ.get("NCU_PEERS"):
                qt, kt, vt = q.transpose(1, 2), kc.transpose(1, 2), vc.transpose(1, 2)
                torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, enable_gqa=True)
    torch.cuda.synchronize()


def main():
    dev, dt = "cuda", torch.bfloat16
    torch.manual_seed(0)
    if os.environ.get("NCU_DECODE"):
        decode_only(os.environ["NCU_DECODE"], dev, dt)
        return
    for b, s, h, d, causal in shapes():
        q, k, v = (torch.randn(b, s, h, d, device=dev, dtype=dt, requires_grad=True) for _ in range(3))
        out = flash_attn_func(q, k, v, causal=causal)
        torch.autograd.grad(out, (q, k, v), torch.randn_like(out))
        if os.environ.get("NCU_PEERS"):
            from torch.nn.attention import SDPBackend, sdpa_kernel
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                qt, kt, vt = (x.detach().transpose(1, 2).requires_grad_() for x in (q, k, v))
                ref = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)
                torch.autograd.grad(ref, (qt, kt, vt), torch.randn_like(ref))
    if os.environ.get("NCU_PAGED"):
        # The same decode paged and contiguous, to compare the two loaders' kernels.
        b, ctx, page = 64, 8192, 16
        qd = torch.randn(b, 1, 32, 128, device=dev, dtype=dt)
        kc = torch.randn(b * ctx // page, page, 4, 128, device=dev, dtype=dt)
        table = torch.randperm(b * ctx // page, device=dev, dtype=torch.int32).reshape(b, ctx // page)
        lens = torch.full((b,), ctx, dtype=torch.int32, device=dev)
        flash_attn_with_kvcache(qd, kc, kc, cache_seqlens=lens, block_table=table)
        kd = kc.reshape(b, ctx, 4, 128)
        flash_attn_with_kvcache(qd, kd, kd, cache_seqlens=lens)
    if not os.environ.get("NCU_SHAPES"):
        qd = torch.randn(1, 1, 32, 128, device=dev, dtype=dt)
        kc = torch.randn(1, 8192, 4, 128, device=dev, dtype=dt)
        vc = torch.randn_like(kc)
        lens = torch.full((1,), 8192, dtype=torch.int32, device=dev)
        flash_attn_with_kvcache(qd, kc, vc, cache_seqlens=lens)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
