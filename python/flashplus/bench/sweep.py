"""Measurements of the project benchmark: dense attention, peak memory, decode bandwidth.

Every number comes from the same process and device. CUDA times are the median of CUDA-event
timings after two warm-up runs, with a 256 MB buffer written between runs to flush L2; CPU times
use perf_counter. Inputs are fresh torch.randn tensors per shape, shared by every implementation.
A variant flashplus was not built with is recorded as "not compiled"; a shape an SDPA backend
refuses as "n/a"; neither stops the sweep.
"""
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from .stream_pool import DefaultPool

MODES = ("fwd", "bwd", "fwd_bwd")
FLOP_FACTOR = {"fwd": 1.0, "bwd": 2.5, "fwd_bwd": 3.5}
CUDA_PEERS = ("FLASH", "CUDNN", "EFFICIENT")
CPU_PEERS = ("MATH",)
FLUSH_BYTES = 256 * 1024 * 1024

# Statuses of one measurement.
OK, NA, NOT_COMPILED, OOM, ERROR, SKIPPED = "ok", "n/a", "not compiled", "oom", "error", "skipped"


@dataclass
class Config:
    device: torch.device
    dtype: torch.dtype
    head_dims: List[int]
    seqlens: List[int]
    modes: List[str]
    causals: List[bool] = field(default_factory=lambda: [False, True])
    tokens: int = 16384          # b * s per batch
    hidden: int = 2048           # h * d
    decode_batches: List[int] = field(default_factory=lambda: [1, 4, 16, 64])
    decode_contexts: List[int] = field(default_factory=lambda: [1024, 8192, 32768, 131072])
    decode_heads_q: int = 32
    decode_heads_kv: int = 4
    decode_head_dim: int = 128
    page_size: int = 16
    memory: bool = True
    decode: bool = True
    repeats: Optional[int] = None  # fixed number of timed runs; None: adaptive
    target_s: float = 0.15         # adaptive: timed runs of about this total length
    min_repeats: int = 5
    max_repeats: int = 50

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def peers(self) -> Sequence[str]:
        return CUDA_PEERS if self.cuda else CPU_PEERS


def dense_flops(b: int, h: int, s_q: int, s_k: int, d: int, causal: bool, mode: str) -> float:
    """flash-attn's count: forward 4*b*h*s_q*s_k*d, halved for causal; bwd 2.5x, fwd+bwd 3.5x."""
    fwd = 4.0 * b * h * s_q * s_k * d / (2 if causal else 1)
    return fwd * FLOP_FACTOR[mode]


def classify_error(exc: BaseException, flashplus: bool) -> str:
    """Status of a failed call: not compiled (flashplus), n/a (SDPA refusing), oom or error."""
    from ..errors import NotCompiledError, UnsupportedError

    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return OOM
    if flashplus:
        if isinstance(exc, (NotCompiledError, UnsupportedError, NotImplementedError)):
            return NOT_COMPILED
        return ERROR
    return NA if isinstance(exc, (RuntimeError, NotImplementedError, ValueError)) else ERROR


def failure(exc: BaseException, flashplus: bool) -> Dict:
    status = classify_error(exc, flashplus)
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return {"status": status, "detail": detail}


class Timer:
    """Median time of fn() in seconds; setup() runs before each call, untimed."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.flush_buf = None
        if cfg.cuda:
            self.flush_buf = torch.empty(FLUSH_BYTES, dtype=torch.uint8, device=cfg.device)

    def flush(self):
        if self.flush_buf is not None:
            self.flush_buf.fill_(7)

    def _one(self, fn, setup):
        if setup is not None:
            setup()
        self.flush()
        if self.cfg.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            return (start, end)
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def _seconds(self, samples):
        if self.cfg.cuda:
            torch.cuda.synchronize(self.cfg.device)
            return [s.elapsed_time(e) / 1e3 for s, e in samples]
        return samples

    def measure(self, fn: Callable, setup: Optional[Callable] = None) -> Dict:
        cfg = self.cfg
        for _ in range(2):
            self._one(fn, setup)
        estimate = self._seconds([self._one(fn, setup)])[0]
        if cfg.repeats:
            reps = cfg.repeats
        else:
            reps = int(cfg.target_s / max(estimate, 1e-6))
            reps = max(cfg.min_repeats, min(cfg.max_repeats, reps))
        samples = self._seconds([self._one(fn, setup) for _ in range(reps)])
        return {"status": OK, "ms": statistics.median(samples) * 1e3, "repeats": reps}


def _sdpa_backend(name: str):
    from torch.nn.attention import SDPBackend
    return {"FLASH": SDPBackend.FLASH_ATTENTION, "CUDNN": SDPBackend.CUDNN_ATTENTION,
            "EFFICIENT": SDPBackend.EFFICIENT_ATTENTION, "MATH": SDPBackend.MATH}[name]


def _sdpa_call(q, k, v, causal, **kw):
    # (b, s, h, d) tensors viewed as SDPA's (b, h, s, d); no copy.
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         is_causal=causal, **kw)
    return out.transpose(1, 2)


def _sdpa_flash_decode(q, k, v):
    """SDPA restricted to its FLASH backend (FlashAttention-2): the decode peer the issue's
    "at least as fast as FA2" compares with. Unrestricted SDPA picks cuDNN for this call."""
    with _Context("FLASH"):
        return _sdpa_call(q, k, v, False, enable_gqa=True)


def _attention_fn(impl: str, causal: bool):
    if impl == "flashplus":
        from flash_attn import flash_attn_func
        return lambda q, k, v: flash_attn_func(q, k, v, causal=causal)
    return lambda q, k, v: _sdpa_call(q, k, v, causal)


class _Context:
    """sdpa_kernel(backend) for a peer, nothing for flashplus; warnings of refusals silenced."""

    def __init__(self, impl: str):
        self.impl = impl
        self.stack = []

    def __enter__(self):
        w = warnings.catch_warnings()
        w.__enter__()
        warnings.simplefilter("ignore")
        self.stack.append(w)
        if self.impl != "flashplus":
            from torch.nn.attention import sdpa_kernel
            ctx = sdpa_kernel([_sdpa_backend(self.impl)])
            ctx.__enter__()
            self.stack.append(ctx)
        return self

    def __exit__(self, *exc):
        while self.stack:
            self.stack.pop().__exit__(*exc)
        return False


def _free(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def time_dense(timer: Timer, impl: str, mode: str, q, k, v, dout, causal: bool) -> Dict:
    """One implementation, one mode on given inputs (q, k, v requires_grad for bwd modes)."""
    attn = _attention_fn(impl, causal)
    grads = (q, k, v)

    def clear():
        for t in grads:
            t.grad = None

    try:
        with _Context(impl):
            if mode == "fwd":
                with torch.no_grad():
                    return timer.measure(lambda: attn(q, k, v))
            if mode == "bwd":
                out = attn(q, k, v)
                result = timer.measure(lambda: out.backward(dout, retain_graph=True), setup=clear)
                del out
                return result
            return timer.measure(lambda: attn(q, k, v).backward(dout), setup=clear)
    except Exception as exc:  # noqa: BLE001 - every failure is a result, not a crash
        return failure(exc, impl == "flashplus")
    finally:
        clear()


def peak_memory(impl: str, q, k, v, dout, causal: bool) -> Dict:
    """max_memory_allocated of one forward+backward after a reset, minus what was allocated
    before (the inputs), plus the high-water mark of the driver's stream-ordered pool, where
    flashplus takes its workspaces (stream_pool.py); CUDA only. The two peaks are added although
    they need not coincide: an upper bound for flashplus, never an understatement."""
    device = q.device
    attn = _attention_fn(impl, causal)
    pool = DefaultPool(device.index if device.index is not None else torch.cuda.current_device())
    try:
        with _Context(impl):
            for t in (q, k, v):
                t.grad = None
            attn(q, k, v).backward(dout)  # warm-up (workspaces, cuDNN plans)
            for t in (q, k, v):
                t.grad = None
            _free(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            pool.reset()
            attn(q, k, v).backward(dout)
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device) - base
            workspace = pool.peak()
            return {"status": OK, "bytes": int(peak + workspace), "workspace_bytes": workspace}
    except Exception as exc:  # noqa: BLE001
        return failure(exc, impl == "flashplus")
    finally:
        for t in (q, k, v):
            t.grad = None


def dense_shapes(cfg: Config):
    for d in cfg.head_dims:
        for s in cfg.seqlens:
            b = max(1, cfg.tokens // s)
            h = max(1, cfg.hidden // d)
            yield d, s, b, h


def run_dense_shape(cfg: Config, timer: Timer, d, s, b, h, causal, on_row=None) -> Dict:
    """All modes and implementations of one shape; returns {'rows': [...], 'memory': {...}}."""
    impls = ["flashplus", *cfg.peers]
    shape = (b, s, h, d)
    q, k, v, dout = (torch.randn(shape, device=cfg.device, dtype=cfg.dtype) for _ in range(4))
    rows = []
    for mode in cfg.modes:
        grad = mode != "fwd"
        qq, kk, vv = (t.detach().requires_grad_(grad) for t in (q, k, v))
        flops = dense_flops(b, h, s, s, d, causal, mode)
        results = {}
        for impl in impls:
            r = time_dense(timer, impl, mode, qq, kk, vv, dout, causal)
            if r["status"] == OK:
                r["tflops"] = flops / (r["ms"] / 1e3) / 1e12
            results[impl] = r
            if r["status"] == OOM:
                _free(cfg.device)
        row = {"head_dim": d, "seqlen": s, "batch": b, "heads": h, "causal": causal,
               "mode": mode, "flops": flops, "results": results,
               "ratios": ratios(results, cfg.peers)}
        rows.append(row)
        if on_row:
            on_row(row)
    memory = None
    if cfg.memory and cfg.cuda:
        qq, kk, vv = (t.detach().requires_grad_(True) for t in (q, k, v))
        mem = {impl: peak_memory(impl, qq, kk, vv, dout, causal) for impl in ("flashplus", "FLASH")}
        ratio = None
        if all(m["status"] == OK for m in mem.values()) and mem["FLASH"]["bytes"] > 0:
            ratio = mem["flashplus"]["bytes"] / mem["FLASH"]["bytes"]
        memory = {"head_dim": d, "seqlen": s, "batch": b, "heads": h, "causal": causal,
                  "results": mem, "ratio": ratio}
    del q, k, v, dout
    _free(cfg.device)
    return {"rows": rows, "memory": memory}


def ratios(results: Dict, peers: Sequence[str]) -> Dict[str, Optional[float]]:
    """flashplus TFLOP/s over each peer's (= peer time / flashplus time); None if either failed."""
    ours = results.get("flashplus", {})
    out = {}
    for peer in peers:
        theirs = results.get(peer, {})
        out[peer] = (theirs["ms"] / ours["ms"]
                     if ours.get("status") == OK and theirs.get("status") == OK else None)
    return out


def copy_bandwidth(cfg: Config) -> Dict:
    """Device-to-device copy: (bytes read + bytes written) / time of one large copy."""
    if cfg.cuda:
        free, _ = torch.cuda.mem_get_info(cfg.device)
        n = int(min(2 << 30, free * 0.15)) // 4096 * 4096
    else:
        n = 64 << 20
    src = torch.randint(0, 255, (n,), dtype=torch.uint8, device=cfg.device)
    dst = torch.empty_like(src)
    timer = Timer(Config(cfg.device, cfg.dtype, [], [], [], repeats=10 if cfg.cuda else 5))
    r = timer.measure(lambda: dst.copy_(src))
    del src, dst, timer
    _free(cfg.device)
    return {"bytes": 2 * n, "ms": r["ms"], "GBps": 2 * n / (r["ms"] / 1e3) / 1e9}


def decode_cases(cfg: Config):
    for b in cfg.decode_batches:
        for ctx in cfg.decode_contexts:
            yield b, ctx


def decode_bytes(cfg: Config, b: int, ctx: int) -> Dict[str, int]:
    esize = torch.tensor([], dtype=cfg.dtype).element_size()
    kv = 2 * b * ctx * cfg.decode_heads_kv * cfg.decode_head_dim * esize
    qo = 2 * b * 1 * cfg.decode_heads_q * cfg.decode_head_dim * esize
    return {"kv": kv, "q_out": qo, "total": kv + qo}


def _graphed(fn: Callable) -> Callable:
    """fn captured once into a CUDA graph; returns the replay. Decode steps run this way in
    inference servers, and it times the kernels without the Python dispatch in front of them."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def _measure_eager_and_graph(timer: Timer, fn: Callable, cuda: bool, ours: bool):
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eager = timer.measure(fn)
    except Exception as exc:  # noqa: BLE001
        return failure(exc, ours), {"status": SKIPPED, "detail": "eager call failed"}
    if not cuda:
        return eager, {"status": SKIPPED, "detail": "no CUDA"}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = timer.measure(_graphed(fn))
    except Exception as exc:  # noqa: BLE001
        graph = failure(exc, ours)
    return eager, graph


def run_decode_case(cfg: Config, timer: Timer, b: int, ctx: int, copy_gbps: float) -> List[Dict]:
    """Contiguous and paged flashplus decode, with SDPA (contiguous, enable_gqa; whatever backend
    it picks, cuDNN on torch 2.11 / H100) and SDPA's FLASH backend (FA2) as references."""
    from flash_attn import flash_attn_with_kvcache

    nbytes = decode_bytes(cfg, b, ctx)
    hq, hk, d, dev, dt = (cfg.decode_heads_q, cfg.decode_heads_kv, cfg.decode_head_dim,
                          cfg.device, cfg.dtype)
    base = {"batch": b, "context": ctx, "heads_q": hq, "heads_kv": hk, "head_dim": d,
            "page_size": cfg.page_size, "bytes": nbytes["total"]}
    rows = []
    if cfg.cuda:
        free, _ = torch.cuda.mem_get_info(dev)
        if nbytes["kv"] > 0.4 * free:
            for layout in ("contiguous", "paged"):
                skipped = {"status": SKIPPED, "detail": f"cache {nbytes['kv'] / 1e9:.1f} GB > 40% "
                           f"of free {free / 1e9:.1f} GB"}
                rows.append({**base, "layout": layout, "flashplus": skipped, "sdpa": skipped,
                             "flashplus_graph": skipped, "sdpa_graph": skipped, "fa2": skipped,
                             "fa2_graph": skipped, "fraction_of_copy": None, "ratio_vs_sdpa": None,
                             "ratio_vs_fa2": None})
            return rows

    def finish(r):
        if r["status"] == OK:
            r["GBps"] = nbytes["total"] / (r["ms"] / 1e3) / 1e9
        return r

    q = torch.randn(b, 1, hq, d, device=dev, dtype=dt)
    seqlens = torch.full((b,), ctx, dtype=torch.int32, device=dev)
    # Contiguous cache: flashplus and the SDPA reference.
    kc = torch.randn(b, ctx, hk, d, device=dev, dtype=dt)
    vc = torch.randn(b, ctx, hk, d, device=dev, dtype=dt)
    ours, ours_graph = _measure_eager_and_graph(
        timer, lambda: flash_attn_with_kvcache(q, kc, vc, cache_seqlens=seqlens), cfg.cuda, True)
    sdpa, sdpa_graph = _measure_eager_and_graph(
        timer, lambda: _sdpa_call(q, kc, vc, False, enable_gqa=True), cfg.cuda, False)
    fa2, fa2_graph = _measure_eager_and_graph(timer, lambda: _sdpa_flash_decode(q, kc, vc), cfg.cuda, False)
    peers = {"sdpa": finish(sdpa), "sdpa_graph": finish(sdpa_graph), "fa2": finish(fa2),
             "fa2_graph": finish(fa2_graph)}
    rows.append({**base, "layout": "contiguous", "flashplus": finish(ours),
                 "flashplus_graph": finish(ours_graph), **peers})
    del kc, vc
    _free(dev)
    # Paged cache: pages of page_size rows in a random order.
    pages_per_seq = -(-ctx // cfg.page_size)
    n_pages = b * pages_per_seq
    kp = torch.randn(n_pages, cfg.page_size, hk, d, device=dev, dtype=dt)
    vp = torch.randn(n_pages, cfg.page_size, hk, d, device=dev, dtype=dt)
    table = torch.randperm(n_pages, device=dev).to(torch.int32).view(b, pages_per_seq)
    paged, paged_graph = _measure_eager_and_graph(
        timer, lambda: flash_attn_with_kvcache(q, kp, vp, cache_seqlens=seqlens, block_table=table),
        cfg.cuda, True)
    rows.append({**base, "layout": "paged", "flashplus": finish(paged),
                 "flashplus_graph": finish(paged_graph), **peers})
    del kp, vp, table, q
    _free(dev)
    # Bandwidth and the peer ratios come from the graph replays where ours exists (the kernels'
    # time), else from the eager calls; "timing" records which.
    for row in rows:
        use_graph = row["flashplus_graph"]["status"] == OK
        r = row["flashplus_graph"] if use_graph else row["flashplus"]
        row["timing"] = "graph" if use_graph else "eager"
        row["fraction_of_copy"] = r["GBps"] / copy_gbps if r["status"] == OK else None
        for name in ("sdpa", "fa2"):
            peer = row[f"{name}_graph"] if use_graph else row[name]
            row[f"ratio_vs_{name}"] = (peer["ms"] / r["ms"] if r["status"] == OK and peer["status"] == OK
                                       else None)
    return rows
