"""Benchmark of flashplus.ring: every variant, forward and forward+backward, one process per GPU.

    torchrun --nproc_per_node 8 -m flashplus.bench_ring            # or: python -m flashplus bench ring

Default shapes are Llama-3-8B attention (32 query heads, 8 K/V heads, head dim 128, bf16,
causal) with 8k tokens per GPU, so N GPUs hold one sequence of N x 8k tokens.

efficiency = T_single / (N x T_ring): T_single is one GPU running the whole N x 8k sequence with
the same kernels (measured on every GPU at once, slowest taken), T_ring the slowest rank's time
for the ring call; 100% means the ring is as fast as splitting the work N ways for free.
Varlen variants run a packed batch of --docs equal documents, against a single-GPU varlen call
on the same batch. Timings are CUDA-event medians after warm-up. Peak memory is this rank's
shard of the inputs plus the most one call allocates on top of them (the full-sequence tensors
the baseline keeps are not counted), the largest over ranks. Without a GPU it runs on CPU with
gloo (for checking the script, not for numbers). Rank 0 prints a table and writes JSON.
"""
import argparse
import json
import os
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.distributed as dist

from . import ops, ring

DENSE_VARIANTS = {"ring": "contiguous", "zigzag": "zigzag", "stripe": "stripe"}
VARLEN_VARIANTS = {"ring_varlen": "contiguous", "zigzag_varlen": "zigzag",
                   "stripe_varlen": "stripe", "llama3": None}
ALL_VARIANTS = list(DENSE_VARIANTS) + list(VARLEN_VARIANTS)


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flashplus bench ring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(ALL_VARIANTS),
                        help=f"comma-separated subset of {','.join(ALL_VARIANTS)}")
    parser.add_argument("--seqlen-per-gpu", type=int, default=8192)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--no-causal", dest="causal", action="store_false")
    parser.add_argument("--window", type=int, default=-1, help="sliding window left size")
    parser.add_argument("--docs", type=int, default=4, help="documents in the varlen batch")
    parser.add_argument("--heads-k-stride", type=int, default=1, help="llama3 K/V heads per gather")
    parser.add_argument("--modes", default="fwd,fwd_bwd", help="fwd, fwd_bwd or both")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    parser.add_argument("--json", default="ring_bench.json", help="where rank 0 writes results")
    return parser.parse_args(argv)


def _init(device_type: str):
    if not dist.is_initialized():
        if "RANK" not in os.environ:  # a plain `python` run: a group of one
            os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                              MASTER_PORT=os.environ.get("MASTER_PORT", "29511"))
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    if device_type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank() % torch.cuda.device_count()))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _median_seconds(fn: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        dist.barrier()
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    slowest = torch.tensor([statistics.median(times)], dtype=torch.float64, device=device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)  # the step waits for the slowest rank
    return slowest.item()


def _peak_bytes(fn: Callable[[], None], device: torch.device, input_bytes: int) -> Optional[int]:
    """This rank's inputs plus the peak of what one call allocates on top of what is already
    there (the full-sequence tensors kept for the baseline are not the ring's)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return input_bytes + torch.cuda.max_memory_allocated(device) - before


class Problem:
    """Random inputs for the full sequence (only used by the single-GPU baseline) and this
    rank's shard, plus how to call each side."""

    def __init__(self, args, device: torch.device, world_size: int, rank: int):
        self.args, self.device, self.rank, self.world_size = args, device, rank, world_size
        self.dtype = getattr(torch, args.dtype)
        self.length = args.seqlen_per_gpu * world_size
        self.window = (args.window, -1)
        generator = torch.Generator(device="cpu").manual_seed(0)

        def rand(*shape):
            return torch.randn(shape, generator=generator).to(device, self.dtype)

        h, hk, d = args.heads, args.kv_heads, args.head_dim
        self.q, self.dout = rand(1, self.length, h, d), rand(1, self.length, h, d)
        self.k, self.v = rand(1, self.length, hk, d), rand(1, self.length, hk, d)
        docs = max(1, args.docs)
        doc_len = self.length // docs
        lengths = [doc_len] * (docs - 1) + [self.length - doc_len * (docs - 1)]
        self.cu_seqlens = torch.tensor([0] + [sum(lengths[:i + 1]) for i in range(docs)],
                                       dtype=torch.int32, device=device)
        self.max_seqlen = max(lengths)

    def mask_kwargs(self):
        return dict(causal=self.args.causal, window_size=self.window)

    def single(self, varlen: bool, backward: bool) -> Callable[[], None]:
        q, k, v, dout = self.q, self.k, self.v, self.dout
        kwargs = dict(causal=self.args.causal, window_left=self.window[0])
        if varlen:
            q, k, v, dout = (t[0] for t in (q, k, v, dout))
            kwargs.update(cu_seqlens_q=self.cu_seqlens, cu_seqlens_k=self.cu_seqlens,
                          max_seqlen_q=self.max_seqlen, max_seqlen_k=self.max_seqlen)

        def run():
            result = ops.fwd(q, k, v, **kwargs)
            if backward:
                ops.bwd(dout, q, k, v, result.out, result.softmax_lse, **kwargs)
        return run

    def ring_call(self, variant: str, backward: bool) -> Callable[[], None]:
        if variant in DENSE_VARIANTS:
            layout = DENSE_VARIANTS[variant]
            local = [ring.shard(t, layout, self.rank, self.world_size) for t in
                     (self.q, self.k, self.v, self.dout)]
            fn = getattr(ring, {"ring": "ring_flash_attn_func",
                                "zigzag": "zigzag_ring_flash_attn_func",
                                "stripe": "stripe_flash_attn_func"}[variant])
            extra = ()
        elif variant == "llama3":
            local, extra, fn = self._llama3()
        else:
            layout = VARLEN_VARIANTS[variant]
            local = [ring.shard_varlen(t[0], self.cu_seqlens, layout, self.rank, self.world_size)
                     for t in (self.q, self.k, self.v, self.dout)]
            extra = (ring.local_cu_seqlens(self.cu_seqlens, layout, self.world_size),
                     self.max_seqlen // self.world_size)
            fn = getattr(ring, {"contiguous": "ring_flash_attn_varlen_func",
                                "zigzag": "zigzag_ring_flash_attn_varlen_func",
                                "stripe": "stripe_flash_attn_varlen_func"}[layout])
        q, k, v, dout = local
        q, k, v = (t.detach().requires_grad_(backward) for t in (q, k, v))
        run_inputs = (q, k, v, dout) if backward else (q, k, v)
        self.input_bytes = sum(t.numel() * t.element_size() for t in run_inputs)

        def run():
            if backward:
                fn(q, k, v, *extra, **self.mask_kwargs()).backward(dout)
            else:
                with torch.no_grad():
                    fn(q, k, v, *extra, **self.mask_kwargs())
        return run

    def _llama3(self):
        per_rank = self.args.seqlen_per_gpu
        rows = slice(self.rank * per_rank, (self.rank + 1) * per_rank)
        local = [t[0, rows] for t in (self.q, self.k, self.v, self.dout)]
        cu_q, cu_k, max_q, max_k, k_slice = ring.llama3_flash_attn_prepare_cu_seqlens(
            self.cu_seqlens, self.args.causal, self.rank, self.world_size)
        extra = (cu_q, cu_k, max_q, max_k, self.args.heads_k_stride, k_slice)
        return local, extra, ring.llama3_flash_attn_varlen_func


def _measure(problem: Problem, variants: List[str], args) -> List[Dict]:
    device, n = problem.device, problem.world_size
    rows = []
    single_cache: Dict = {}
    for variant in variants:
        varlen = variant in VARLEN_VARIANTS
        for mode in args.modes.split(","):
            backward = mode == "fwd_bwd"
            key = (varlen, backward)
            if key not in single_cache:
                single_cache[key] = _median_seconds(problem.single(varlen, backward), device,
                                                    args.warmup, args.repeats)
            t_single = single_cache[key]
            call = problem.ring_call(variant, backward)
            t_ring = _median_seconds(call, device, args.warmup, args.repeats)
            peak = _peak_bytes(call, device, problem.input_bytes)
            if peak is not None:
                peak_all = torch.tensor([peak], dtype=torch.float64, device=device)
                dist.all_reduce(peak_all, op=dist.ReduceOp.MAX)
                peak = int(peak_all.item())
            rows.append(dict(variant=variant, mode=mode, t_single_ms=t_single * 1e3,
                             t_ring_ms=t_ring * 1e3, efficiency=t_single / (n * t_ring),
                             peak_memory_gib=None if peak is None else peak / 2**30))
    return rows


def _table(rows: List[Dict], header: str) -> str:
    lines = [header, f"{'variant':<14} {'mode':<8} {'single ms':>10} {'ring ms':>9} "
             f"{'efficiency':>10} {'peak GiB':>9}"]
    for r in rows:
        peak = "-" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f}"
        lines.append(f"{r['variant']:<14} {r['mode']:<8} {r['t_single_ms']:>10.2f} "
                     f"{r['t_ring_ms']:>9.2f} {r['efficiency']:>9.1%} {peak:>9}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = _parse(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(ALL_VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {ALL_VARIANTS}")
    bad_modes = sorted(set(args.modes.split(",")) - {"fwd", "fwd_bwd"})
    if bad_modes:
        raise SystemExit(f"unknown modes {bad_modes}; choose from fwd, fwd_bwd")
    device_type = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device = _init(device_type)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    problem = Problem(args, device, world_size, rank)
    rows = _measure(problem, variants, args)
    if rank == 0:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        header = (f"{world_size} x {name}; {args.seqlen_per_gpu} tokens per GPU, q heads "
                  f"{args.heads}, kv heads {args.kv_heads}, head dim {args.head_dim}, {args.dtype}, "
                  f"{'causal' if args.causal else 'not causal'}, window {args.window}")
        print(_table(rows, header))
        with open(args.json, "w") as f:
            json.dump(dict(config=vars(args), world_size=world_size, device=name, results=rows),
                      f, indent=2)
        print(f"wrote {args.json}")
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
