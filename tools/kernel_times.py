#!/usr/bin/env python3
"""kernel_times.py — per-kernel GPU times (torch.profiler / CUPTI) of a few flashplus calls:
decode (split-KV + combine), forward and backward, to see which launch dominates a call.
Usage (device): FLASHPLUS_LIBRARY=... PYTHONPATH=python python3 tools/kernel_times.py"""
import os
import time

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


def host_time(title, fn, reps=2000):
    """Wall time per call on the host with the GPU kept busy elsewhere: what an eager caller pays
    before the kernels are even queued (the Python layer, the C ABI's checks, the launches)."""
    for _ in range(50):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    elapsed = (time.perf_counter() - start) / reps
    torch.cuda.synchronize()
    print(f"== host {title}: {elapsed * 1e6:.1f} us per call")


def main():
    dev, dt = "cuda", torch.bfloat16
    q = torch.randn(1, 128, 16, 128, device=dev, dtype=dt)
    qd = torch.randn(1, 1, 32, 128, device=dev, dtype=dt)
    kc = torch.randn(1, 1024, 4, 128, device=dev, dtype=dt)
    lens = torch.full((1,), 1024, dtype=torch.int32, device=dev)
    host_time("flash_attn_func b=1 s=128 h=16", lambda: flash_attn_func(q, q, q))
    host_time("flash_attn_with_kvcache b=1 ctx=1k", lambda: flash_attn_with_kvcache(qd, kc, kc, cache_seqlens=lens))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    qt = q.transpose(1, 2)
    host_time("SDPA b=1 s=128 h=16", lambda: sdpa(qt, qt, qt))
    for b, ctx, page in [(1, 1024, 0), (1, 1024, 16), (1, 8192, 0), (1, 8192, 16), (1, 131072, 0), (64, 8192, 0),
                         (64, 8192, 16)]:
        q = torch.randn(b, 1, 32, 128, device=dev, dtype=dt)
        lens = torch.full((b,), ctx, dtype=torch.int32, device=dev)
        table = None
        if page:
            pages = b * ctx // page
            kc = torch.randn(pages, page, 4, 128, device=dev, dtype=dt)
            table = torch.randperm(pages, device=dev, dtype=torch.int32).view(b, ctx // page)
        else:
            kc = torch.randn(b, ctx, 4, 128, device=dev, dtype=dt)
        vc = torch.randn_like(kc)
        show(f"decode b={b} ctx={ctx} page={page}",
             lambda: flash_attn_with_kvcache(q, kc, vc, cache_seqlens=lens, block_table=table))
        if b == 1 and not page:
            # Under programmatic dependent launch the combine starts early and its profiled time
            # includes its wait for the split kernel; launched the plain way it is its own.
            os.environ["FLASHPLUS_COMBINE_PDL"] = "0"
            show(f"decode b={b} ctx={ctx} page={page}, combine without PDL",
                 lambda: flash_attn_with_kvcache(q, kc, vc, cache_seqlens=lens, block_table=table))
            del os.environ["FLASHPLUS_COMBINE_PDL"]
        if not page and b == 1:  # SDPA's kernels for the same step (contiguous cache), launch against launch
            qt, kt, vt = q.transpose(1, 2), kc.transpose(1, 2), vc.transpose(1, 2)
            show(f"SDPA decode b={b} ctx={ctx}",
                 lambda: torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, enable_gqa=True))
        del kc, vc
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
