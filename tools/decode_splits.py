#!/usr/bin/env python3
"""decode_splits.py — decode time against the split-KV count (flash_attn_with_kvcache's
num_splits), contiguous and paged, next to SDPA: whether the host heuristic (num_splits = 0)
picks well where decode is latency-bound (small batch), and how much of the paged / contiguous gap
a different split count closes. Times are CUDA-graph replays with L2 flushed, as in the bench. The
last column is the automatic choice again with the combine launched the plain way
(FLASHPLUS_COMBINE_PDL=0: what programmatic dependent launch saves).
Usage (device): FLASHPLUS_LIBRARY=... PYTHONPATH=python python3 tools/decode_splits.py"""
import os

import torch

from flash_attn import flash_attn_with_kvcache
from flashplus.bench.sweep import Config, Timer, _graphed

SPLITS = (0, 1, 2, 4, 8, 16, 32, 64, 128)
CASES = tuple(tuple(int(x) for x in c.split(",")) for c in
              os.environ.get("CASES", "1,1024 1,8192 4,8192 16,1024 1,32768").split())
HQ, HK, D, PAGE = 32, 4, 128, 16


def microseconds(timer, fn):
    with torch.no_grad():
        return timer.measure(_graphed(fn) if timer.cfg.cuda else fn)["ms"] * 1e3


def main():
    dev, dt = torch.device(os.environ.get("DEVICE", "cuda")), torch.bfloat16  # DEVICE=cpu: a smoke run
    timer = Timer(Config(device=dev, dtype=dt, head_dims=[], seqlens=[], modes=[], repeats=None))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    print("b ctx layout | sdpa us | " + " ".join(f"s={s}" if s else "auto" for s in SPLITS) + " | auto, no PDL")
    for b, ctx in CASES:
        torch.manual_seed(0)
        q = torch.randn(b, 1, HQ, D, device=dev, dtype=dt)
        lens = torch.full((b,), ctx, dtype=torch.int32, device=dev)
        kc = torch.randn(b, ctx, HK, D, device=dev, dtype=dt)
        vc = torch.randn_like(kc)
        qt, kt, vt = q.transpose(1, 2), kc.transpose(1, 2), vc.transpose(1, 2)
        ref = microseconds(timer, lambda: sdpa(qt, kt, vt, enable_gqa=True))
        pages = b * ctx // PAGE
        kp, vp = kc.reshape(pages, PAGE, HK, D), vc.reshape(pages, PAGE, HK, D)
        order = torch.randperm(pages, device=dev)
        kp, vp = kp[order].contiguous(), vp[order].contiguous()
        table = torch.argsort(order).to(torch.int32).view(b, ctx // PAGE)  # logical page -> slot
        expected = flash_attn_with_kvcache(q, kc, vc, cache_seqlens=lens, num_splits=1)[0]
        for layout, args in (("contiguous", (kc, vc, None)), ("paged", (kp, vp, table))):
            k, v, bt = args
            row = []
            for s in SPLITS:
                call = lambda s=s: flash_attn_with_kvcache(q, k, v, cache_seqlens=lens, block_table=bt, num_splits=s)
                err = (call()[0].float() - expected.float()).abs().max().item()
                row.append(f"{microseconds(timer, call):6.1f}" + ("" if err < 2e-2 else f"(err {err:.2g})"))
            os.environ["FLASHPLUS_COMBINE_PDL"] = "0"  # read per call, so also while the graph is captured
            try:
                call = lambda: flash_attn_with_kvcache(q, k, v, cache_seqlens=lens, block_table=bt, num_splits=0)
                plain = microseconds(timer, call)
            finally:
                del os.environ["FLASHPLUS_COMBINE_PDL"]
            print(f"{b} {ctx} {layout} | {ref:6.1f} | " + " ".join(row) + f" | {plain:6.1f}", flush=True)
        del kc, vc, kp, vp


if __name__ == "__main__":
    main()
