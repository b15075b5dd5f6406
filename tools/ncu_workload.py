#!/usr/bin/env python3
"""ncu_workload.py — a small, fixed flashplus workload for Nsight Compute. Default: one forward and
one backward at d = 128, s = 4096 (b = 4, h = 16, bf16), plus one decode call (b = 1, 8k context,
GQA 8:1), each after a warm-up. tools/ncu_profile.sh runs it under ncu.

NCU_SHAPES picks other dense shapes: "b,s,h,d[,c]" entries separated by spaces (c: causal), e.g.
NCU_SHAPES="32,512,16,128 4,4096,16,128" to compare a short-sequence forward with a long one.
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


def main():
    dev, dt = "cuda", torch.bfloat16
    torch.manual_seed(0)
    for b, s, h, d, causal in shapes():
        q, k, v = (torch.randn(b, s, h, d, device=dev, dtype=dt, requires_grad=True) for _ in range(3))
        out = flash_attn_func(q, k, v, causal=causal)
        torch.autograd.grad(out, (q, k, v), torch.randn_like(out))
    if not os.environ.get("NCU_SHAPES"):
        qd = torch.randn(1, 1, 32, 128, device=dev, dtype=dt)
        kc = torch.randn(1, 8192, 4, 128, device=dev, dtype=dt)
        vc = torch.randn_like(kc)
        lens = torch.full((1,), 8192, dtype=torch.int32, device=dev)
        flash_attn_with_kvcache(qd, kc, vc, cache_seqlens=lens)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
