"""python -m flashplus bench: a quick timing of flash_attn_func against torch SDPA.

A sanity check on the installed build, not the project's benchmark (that is bench/ in the
repository, which sweeps shapes, flushes L2 and records results). Same process, same inputs,
median of `--repeats` timed runs after one warm-up; FLOPs counted as flash-attn does
(4 * b * h * s_q * s_k * d forward, halved for causal).
"""
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [  # (b, s, h, d)
    (8, 512, 16, 64),
    (4, 1024, 16, 128),
    (2, 2048, 8, 128),
]
CPU_SHAPES = [(1, 256, 4, 64), (1, 512, 4, 128)]


def _timer(device):
    if device.type == "cuda":
        def timed(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end) / 1e3
    else:
        def timed(fn):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
    return timed


def _median_time(fn, timed, repeats):
    fn()
    return statistics.median(timed(fn) for _ in range(repeats))


def run(args) -> int:
    from flash_attn import flash_attn_func

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype) if args.dtype else (
        torch.bfloat16 if device.type == "cuda" else torch.float32)
    timed = _timer(device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'})"
          f", dtype {str(dtype).replace('torch.', '')}, median of {args.repeats}")
    print(f"{'b':>3} {'s':>6} {'h':>4} {'d':>4} {'causal':>6} {'flashplus ms':>13} "
          f"{'sdpa ms':>9} {'TFLOP/s':>8} {'speedup':>8}")
    for b, s, h, d in (SHAPES if device.type == "cuda" else CPU_SHAPES):
        q, k, v = (torch.randn(b, s, h, d, device=device, dtype=dtype) for _ in range(3))
        qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
        for causal in (False, True):
            ours = _median_time(lambda: flash_attn_func(q, k, v, causal=causal), timed,
                                args.repeats)
            sdpa = _median_time(
                lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal), timed,
                args.repeats)
            flops = 4 * b * h * s * s * d / (2 if causal else 1)
            print(f"{b:>3} {s:>6} {h:>4} {d:>4} {str(causal):>6} {ours * 1e3:>13.3f} "
                  f"{sdpa * 1e3:>9.3f} {flops / ours / 1e12:>8.2f} {sdpa / ours:>7.2f}x")
    return 0
