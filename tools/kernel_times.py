#!/usr/bin/env python3
"""kernel_times.py — per-kernel GPU times (torch.profiler / CUPTI) of a few flashplus calls:
decode (split-KV + combine), forward and backward, to see which launch dominates a call.
Usage (device): FLASHPLUS_LIBRARY=... PYTHONPATH=python python3 tools/kernel_times.py"""
import torch
from torch.profiler import ProfilerActivity, profile

from flash_attn import flash_attn_func, flash_attn_with_kvcache


def show(title, fn, reps=5):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    print(f"== {title} (per call, {reps} calls)")
    for e in sorted(prof.key_averages(), key=lambda e: -e.device_time_total)[:8]:
        if e.device_time_total > 0:
            print(f"  {e.device_time_total / reps:9.1f} us  x{e.count // reps:<3d} {e.key[:90]}")


def main():
    dev, dt = "cuda", torch.bfloat16
    for b, ctx in [(1, 8192), (16, 8192)]:
        q = torch.randn(b, 1, 32, 128, device=dev, dtype=dt)
        kc = torch.randn(b, ctx, 4, 128, device=dev, dtype=dt)
        vc = torch.randn_like(kc)
        lens = torch.full((b,), ctx, dtype=torch.int32, device=dev)
        show(f"decode b={b} ctx={ctx}", lambda: flash_attn_with_kvcache(q, kc, vc, cache_seqlens=lens))
    for s, d in [(512, 128), (4096, 128), (4096, 64)]:
        b, h = 16384 // s, 2048 // d
        q, k, v = (torch.randn(b, s, h, d, device=dev, dtype=dt, requires_grad=True) for _ in range(3))
        out = flash_attn_func(q, k, v, causal=False)
        g = torch.randn_like(out)
        show(f"fwd b={b} s={s} h={h} d={d}", lambda: flash_attn_func(q, k, v))
        show(f"fwd+bwd b={b} s={s} h={h} d={d}",
             lambda: torch.autograd.grad(flash_attn_func(q, k, v), (q, k, v), g))
        if s == 4096 and d == 128:  # the atomic-free two-kernel backward, for comparison
            show(f"fwd+bwd deterministic b={b} s={s} h={h} d={d}",
                 lambda: torch.autograd.grad(flash_attn_func(q, k, v, deterministic=True), (q, k, v), g))
        # The same shape through SDPA's FLASH backend (FA2), kernel against kernel.
        from torch.nn.attention import SDPBackend, sdpa_kernel
        qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            sdpa = torch.nn.functional.scaled_dot_product_attention
            show(f"SDPA FLASH fwd+bwd b={b} s={s} h={h} d={d}",
                 lambda: torch.autograd.grad(sdpa(qt, kt, vt), (q, k, v), g.transpose(1, 2)))


if __name__ == "__main__":
    main()
