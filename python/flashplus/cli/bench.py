"""python -m flashplus bench: the project benchmark, flashplus against torch SDPA.

Same process, same GPU: flashplus (flash_attn API) vs SDPA FLASH (FA2), CUDNN and EFFICIENT on
a sweep of dense shapes (16k tokens per batch, hidden 2048, head dims 64/128/256, seqlen 512..16k,
causal and not; forward, backward, forward+backward, bf16), peak memory of forward+backward vs
SDPA FLASH, and decode through flash_attn_with_kvcache (GQA 32:4, d 128, paged and contiguous)
as a fraction of the measured copy bandwidth. Writes results.json, bench.png (with matplotlib)
and RESULTS_section.md (markdown for bench/RESULTS.md) to --out and prints the table and markdown.
`--device cpu` is a tiny smoke run (flashplus vs SDPA MATH).
"""
import datetime
import json
import os
import subprocess
import sys
import time
from typing import List

import torch

DEFAULT_HEAD_DIMS = [64, 128, 256]
DEFAULT_SEQLENS = [512, 1024, 2048, 4096, 8192, 16384]


def _int_list(text: str) -> List[int]:
    out = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        mult = 1
        if part[-1] in "kK":
            part, mult = part[:-1], 1024
        out.append(int(part) * mult)
    return out


def _modes(text: str) -> List[str]:
    from ..bench.sweep import MODES
    alias = {"fwdbwd": "fwd_bwd", "fwd+bwd": "fwd_bwd", "both": "fwd_bwd", "forward": "fwd",
             "backward": "bwd"}
    out = []
    for part in text.replace(" ", "").split(","):
        if part:
            mode = alias.get(part.lower(), part.lower())
            if mode not in MODES:
                raise SystemExit(f"--modes: unknown mode {part!r}; use {', '.join(MODES)}")
            out.append(mode)
    return out


def add_arguments(parser) -> None:
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="bfloat16 (default) or float16")
    parser.add_argument("--quick", action="store_true", help="a few shapes only")
    parser.add_argument("--heads-dims", "--head-dims", dest="head_dims", type=_int_list,
                        default=None, help="comma-separated head dims (default 64,128,256)")
    parser.add_argument("--seqlens", type=_int_list, default=None,
                        help="comma-separated sequence lengths, k = 1024 (default 512,1k,...,16k)")
    parser.add_argument("--modes", type=_modes, default=None,
                        help="comma-separated of fwd, bwd, fwd_bwd (default all)")
    parser.add_argument("--causal", choices=("both", "yes", "no"), default="both")
    parser.add_argument("--tokens", type=int, default=None, help="b * s per batch (default 16384)")
    parser.add_argument("--hidden", type=int, default=None, help="h * d (default 2048)")
    parser.add_argument("--decode-batches", type=_int_list, default=None)
    parser.add_argument("--decode-contexts", type=_int_list, default=None)
    parser.add_argument("--no-decode", action="store_true", help="skip the decode sweep")
    parser.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per measurement (default: adaptive, 5..50)")
    parser.add_argument("--out", default=None, help="output folder (default bench/results/<date>)")
    parser.add_argument("--no-plot", action="store_true", help="do not write bench.png")


def _commit() -> str:
    for cwd in (os.path.dirname(os.path.abspath(__file__)), os.getcwd()):
        try:
            r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
            if r.returncode == 0 and r.stdout.strip():
                return r.stdout.strip()
        except Exception:  # noqa: BLE001
            pass
    return ""


def _results_root() -> str:
    """bench/results of the checkout this package lives in, else of the working directory."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        r = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=here,
                           capture_output=True, text=True, timeout=10)
        top = r.stdout.strip()
        if r.returncode == 0 and top and os.path.isdir(os.path.join(top, "bench")):
            return os.path.join(top, "bench", "results")
    except Exception:  # noqa: BLE001
        pass
    return os.path.join("bench", "results")


class _Progress:
    """tqdm when importable, else a line counter on stderr."""

    def __init__(self, total: int):
        self.total, self.n = total, 0
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="case", dynamic_ncols=True, file=sys.stderr)
        except Exception:  # noqa: BLE001
            self.bar = None

    def step(self, label: str):
        self.n += 1
        if self.bar is not None:
            self.bar.set_description(label, refresh=False)
            self.bar.update(1)
        else:
            print(f"[{self.n}/{self.total}] {label}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _config(args):
    from ..bench.sweep import MODES, Config

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench: --device cuda but torch sees no CUDA device")
    dtype = getattr(torch, args.dtype) if args.dtype else torch.bfloat16
    cuda = device.type == "cuda"
    if cuda:
        head_dims = [128] if args.quick else DEFAULT_HEAD_DIMS
        seqlens = [1024, 4096] if args.quick else DEFAULT_SEQLENS
        tokens, hidden = 16384, 2048
        batches = [1, 16] if args.quick else [1, 4, 16, 64]
        contexts = [8192, 32768] if args.quick else [1024, 8192, 32768, 131072]
    else:  # tiny smoke run: the CPU backend is a reference, not a fast path
        head_dims = [64]
        seqlens = [128] if args.quick else [128, 256]
        tokens, hidden = (256, 128) if args.quick else (512, 256)
        batches = [1] if args.quick else [1, 2]
        contexts = [256] if args.quick else [256, 1024]
    causals = {"both": [False, True], "yes": [True], "no": [False]}[args.causal]
    cfg = Config(device=device, dtype=dtype, head_dims=args.head_dims or head_dims,
                 seqlens=args.seqlens or seqlens, modes=args.modes or list(MODES),
                 causals=causals, tokens=args.tokens or tokens, hidden=args.hidden or hidden,
                 decode_batches=args.decode_batches or batches,
                 decode_contexts=args.decode_contexts or contexts,
                 memory=not args.no_memory, decode=not args.no_decode, repeats=args.repeats)
    if not cuda:
        cfg.target_s, cfg.min_repeats, cfg.max_repeats = 0.02, 2, 5
    return cfg


def _meta(cfg, args) -> dict:
    import flashplus

    info = {}
    try:
        info = flashplus.build_info()
    except Exception as exc:  # noqa: BLE001
        info = {"error": str(exc)}
    cuda_info = (info.get("backends") or {}).get("cuda") or {}
    name = torch.cuda.get_device_name(cfg.device) if cfg.cuda else "cpu"
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "device": cfg.device.type, "device_name": name,
        "capability": ".".join(map(str, torch.cuda.get_device_capability(cfg.device)))
        if cfg.cuda else None,
        "dtype": str(cfg.dtype).replace("torch.", ""),
        "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "flashplus_version": getattr(flashplus, "__version__", None),
        "preset": info.get("preset") or cuda_info.get("preset"),
        "cuda_head_dims": cuda_info.get("head_dims"), "cuda_dtypes": cuda_info.get("dtypes"),
        "commit": _commit(),
        "command": "python -m flashplus bench " + " ".join(sys.argv[2:] if
                                                             sys.argv[1:2] == ["bench"] else []),
        "peers": list(cfg.peers), "tokens": cfg.tokens, "hidden": cfg.hidden,
        "head_dims": cfg.head_dims, "seqlens": cfg.seqlens, "modes": cfg.modes,
        "causal": cfg.causals, "repeats": cfg.repeats or "adaptive",
        "decode": {"batches": cfg.decode_batches, "contexts": cfg.decode_contexts,
                   "heads_q": cfg.decode_heads_q, "heads_kv": cfg.decode_heads_kv,
                   "head_dim": cfg.decode_head_dim, "page_size": cfg.page_size},
    }


def run(args) -> int:
    from ..bench import report, sweep

    cfg = _config(args)
    t0 = time.time()
    data = {"meta": _meta(cfg, args), "dense": [], "memory": [], "decode": []}
    out_dir = args.out or os.path.join(
        _results_root(), datetime.datetime.now().strftime("%Y-%m-%d_%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    meta = data["meta"]
    print(f"bench: {meta['device_name']}, {meta['dtype']}, torch {meta['torch']}, flashplus "
          f"preset {meta['preset']}, commit {meta['commit'] or '?'}; peers "
          f"{', '.join(cfg.peers)}; output {out_dir}", flush=True)

    shapes = list(sweep.dense_shapes(cfg))
    cases = list(sweep.decode_cases(cfg)) if cfg.decode else []
    progress = _Progress(len(shapes) * len(cfg.causals) + len(cases) + (1 if cases else 0))
    timer = sweep.Timer(cfg)
    try:
        for d, s, b, h in shapes:
            for causal in cfg.causals:
                res = sweep.run_dense_shape(cfg, timer, d, s, b, h, causal)
                data["dense"] += res["rows"]
                if res["memory"]:
                    data["memory"].append(res["memory"])
                progress.step(f"d={d} s={s} {'causal' if causal else 'full'}")
        if cases:
            copy = sweep.copy_bandwidth(cfg)
            meta["copy_bandwidth_GBps"] = copy["GBps"]
            meta["copy_bandwidth"] = copy
            progress.step(f"copy {copy['GBps']:.0f} GB/s")
            for b, ctx in cases:
                data["decode"] += sweep.run_decode_case(cfg, timer, b, ctx, copy["GBps"])
                progress.step(f"decode b={b} ctx={ctx}")
    finally:
        progress.close()
    del timer
    meta["elapsed_s"] = time.time() - t0
    data["targets"] = report.targets(data)
    if not args.no_plot:
        path = report.plot(data, os.path.join(out_dir, "bench.png"))
        data["plot"] = path
        if path is None:
            print("bench: matplotlib not importable, no plot", file=sys.stderr)
    md = report.markdown(data)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(data, f, indent=1)
    with open(os.path.join(out_dir, "RESULTS_section.md"), "w") as f:
        f.write(md)
    print()
    print(report.console_table(data))
    print()
    print(md)
    print(f"bench: wrote {os.path.join(out_dir, 'results.json')}, RESULTS_section.md"
          + (", bench.png" if data.get("plot") else "") + f" in {meta['elapsed_s']:.0f} s")
    return 0
