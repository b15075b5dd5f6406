"""Reports of the project benchmark: console table, target checks, markdown section, PNG plot."""
from typing import Dict, List, Optional

TARGET_RATIO = 1.0       # fwd and bwd vs SDPA FLASH at seqlen >= 1k
TARGET_FLOOR = 0.9       # no shape below this
TARGET_MIN_SEQLEN = 1024
TARGET_DECODE = 0.70     # of the copy bandwidth, context >= 8k
TARGET_DECODE_CTX = 8192


def _fmt_len(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def _cell(result: Dict, key: str = "tflops", fmt: Optional[str] = None) -> str:
    if result is None:
        return "-"
    if result.get("status") == "ok":
        value = result[key]
        if fmt is None:  # TFLOP/s: one decimal on a GPU, three significant digits when tiny
            fmt = "{:.1f}" if value >= 10 else "{:.3g}"
        return fmt.format(value)
    return result.get("status", "-")


def _ratio(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2f}x"


def targets(data: Dict) -> List[Dict]:
    """The issue's targets, each {'name', 'met': True/False/None (nothing measured), 'detail'}."""
    out = []
    peer = "FLASH"
    ratios, not_compiled = [], 0
    for row in data.get("dense", []):
        if row["mode"] not in ("fwd", "bwd"):
            continue
        if row["results"]["flashplus"]["status"] == "not compiled":
            not_compiled += 1
        r = row["ratios"].get(peer)
        if r is not None:
            ratios.append((r, row))
    if ratios:
        long = [(r, row) for r, row in ratios if row["seqlen"] >= TARGET_MIN_SEQLEN]
        below = [(r, row) for r, row in long if r < TARGET_RATIO]
        floor = [(r, row) for r, row in ratios if r < TARGET_FLOOR]
        worst, wrow = min(ratios, key=lambda x: x[0])
        detail = (f"{len(ratios)} shapes compared, {len(below)} at seqlen >= 1k below "
                  f"{TARGET_RATIO:.1f}x, {len(floor)} below {TARGET_FLOOR:.1f}x; worst "
                  f"{worst:.2f}x (d={wrow['head_dim']}, s={_fmt_len(wrow['seqlen'])}, "
                  f"{'causal' if wrow['causal'] else 'non-causal'}, {wrow['mode']})")
        met = not below and not floor
    else:
        detail, met = "no shape measured against SDPA FLASH", None
    if not_compiled:
        detail += f"; {not_compiled} fwd/bwd shapes not compiled in this build (not counted)"
    out.append({"name": f"fwd and bwd >= {TARGET_RATIO:.1f}x SDPA FLASH at seqlen >= 1k, none "
                f"below {TARGET_FLOOR:.1f}x", "met": met, "detail": detail})

    fracs = [(row["fraction_of_copy"], row) for row in data.get("decode", [])
             if row["context"] >= TARGET_DECODE_CTX and row["fraction_of_copy"] is not None]
    if fracs:
        worst, wrow = min(fracs, key=lambda x: x[0])
        below = sum(1 for f, _ in fracs if f < TARGET_DECODE)
        met = below == 0
        detail = (f"{len(fracs)} cases, {below} below; worst {worst:.0%} (batch {wrow['batch']}, "
                  f"context {_fmt_len(wrow['context'])}, {wrow['layout']})")
    else:
        met, detail = None, "no decode case with context >= 8k measured"
    out.append({"name": f"decode >= {TARGET_DECODE:.0%} of copy bandwidth at context >= 8k",
                "met": met, "detail": detail})

    mem = [m for m in data.get("memory", []) if m.get("ratio") is not None]
    if mem:
        worst = max(mem, key=lambda m: m["ratio"])
        over = sum(1 for m in mem if m["ratio"] > 1.0)
        met = over == 0
        detail = (f"{len(mem)} shapes, {over} above FA2; worst {worst['ratio']:.2f}x "
                  f"(d={worst['head_dim']}, s={_fmt_len(worst['seqlen'])}, "
                  f"{'causal' if worst['causal'] else 'non-causal'})")
    else:
        met, detail = None, "no shape measured for both flashplus and SDPA FLASH"
    out.append({"name": "peak memory of fwd+bwd <= FA2 (SDPA FLASH)", "met": met,
                "detail": detail})
    return out


def _mark(met: Optional[bool]) -> str:
    return {True: "met", False: "MISSED", None: "not measured"}[met]


def dense_table(data: Dict) -> List[str]:
    peers = data["meta"]["peers"]
    head = (["d", "seqlen", "b", "h", "causal", "mode", "flashplus"] + peers
            + [f"speedup/{p}" for p in peers])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in data.get("dense", []):
        res = row["results"]
        cells = [str(row["head_dim"]), _fmt_len(row["seqlen"]), str(row["batch"]),
                 str(row["heads"]), "yes" if row["causal"] else "no", row["mode"],
                 _cell(res["flashplus"])] + [_cell(res.get(p)) for p in peers] + \
                [_ratio(row["ratios"].get(p)) for p in peers]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def memory_table(data: Dict) -> List[str]:
    rows = data.get("memory", [])
    if not rows:
        return []
    lines = ["| d | seqlen | b | h | causal | flashplus MiB | FLASH MiB | flashplus/FLASH |",
             "|---|---|---|---|---|---|---|---|"]
    for m in rows:
        mib = [_cell(m["results"][k], "bytes", "{:.0f}") if m["results"][k]["status"] != "ok"
               else f"{m['results'][k]['bytes'] / 2**20:.0f}" for k in ("flashplus", "FLASH")]
        lines.append(f"| {m['head_dim']} | {_fmt_len(m['seqlen'])} | {m['batch']} | {m['heads']} "
                     f"| {'yes' if m['causal'] else 'no'} | {mib[0]} | {mib[1]} "
                     f"| {_ratio(m['ratio'])} |")
    return lines


def _us(result: Dict) -> str:
    return f"{result['ms'] * 1e3:.1f}" if result.get("status") == "ok" else result.get("status", "-")


def decode_table(data: Dict) -> List[str]:
    rows = data.get("decode", [])
    if not rows:
        return []
    lines = ["| batch | context | layout | flashplus us (eager) | flashplus us (graph) | GB/s | of copy "
             "| SDPA us (eager) | SDPA us (graph) | speedup/SDPA | FA2 us | speedup/FA2 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    missing = {"status": "-"}
    for r in rows:
        ours, sdpa = r["flashplus"], r["sdpa"]
        ours_graph, sdpa_graph = r.get("flashplus_graph", missing), r.get("sdpa_graph", missing)
        fa2 = r.get("fa2_graph" if r.get("timing") == "graph" else "fa2", missing)
        used = ours_graph if r.get("timing") == "graph" else ours
        frac = "-" if r["fraction_of_copy"] is None else f"{r['fraction_of_copy']:.0%}"
        lines.append(
            f"| {r['batch']} | {_fmt_len(r['context'])} | {r['layout']} | {_us(ours)} | {_us(ours_graph)} "
            f"| {_cell(used, 'GBps', '{:.0f}')} | {frac} | {_us(sdpa)} | {_us(sdpa_graph)} "
            f"| {_ratio(r['ratio_vs_sdpa'])} | {_us(fa2)} | {_ratio(r.get('ratio_vs_fa2'))} |")
    return lines


def markdown(data: Dict) -> str:
    meta = data["meta"]
    out = [f"## {meta['device_name']} — {meta['date']}", "",
           f"- device: {meta['device_name']} ({meta['device']}), dtype {meta['dtype']}",
           f"- torch {meta['torch']} (CUDA {meta.get('torch_cuda') or '-'}), flashplus "
           f"{meta.get('flashplus_version') or '?'}, build preset {meta.get('preset') or '?'}, "
           f"commit {meta.get('commit') or 'unknown'}",
           f"- command: `{meta['command']}`; {meta['elapsed_s']:.0f} s",
           f"- dense: {meta['tokens']} tokens per batch (b = {meta['tokens']} // s), hidden "
           f"{meta['hidden']} (h = {meta['hidden']} // d); TFLOP/s as flash-attn counts them "
           "(fwd 4*b*h*s*s*d, halved for causal; bwd 2.5x, fwd+bwd 3.5x); median of "
           "CUDA-event timings after warm-up, L2 flushed (256 MB write) between runs" if
           meta["device"] == "cuda" else
           f"- dense: {meta['tokens']} tokens per batch, hidden {meta['hidden']} (CPU smoke run, "
           "perf_counter timings)"]
    if meta.get("copy_bandwidth_GBps"):
        out.append(f"- device-to-device copy bandwidth (read + write): "
                   f"{meta['copy_bandwidth_GBps']:.0f} GB/s")
    out += ["", "### Targets", ""]
    for t in data["targets"]:
        out.append(f"- **{_mark(t['met'])}** — {t['name']}: {t['detail']}")
    out += ["", "### Dense attention (TFLOP/s; speedup = flashplus TFLOP/s / peer's)", ""]
    out += dense_table(data)
    mem = memory_table(data)
    if mem:
        out += ["", "### Peak memory of forward+backward (beyond the inputs)", ""] + mem
    dec = decode_table(data)
    if dec:
        out += ["", f"### Decode (s_q = 1, {data['meta']['decode']['heads_q']} q heads, "
                f"{data['meta']['decode']['heads_kv']} kv heads, d = "
                f"{data['meta']['decode']['head_dim']}, page size "
                f"{data['meta']['decode']['page_size']}; bytes = K + V read + q + out; SDPA: "
                "contiguous cache, enable_gqa, the backend SDPA picks (cuDNN on torch 2.11 / H100); FA2: "
                "the same call restricted to SDPA's FLASH backend (graph replay where ours is timed "
                "that way). GB/s, of copy and speedups use the CUDA-graph replay "
                "(one call captured per graph, L2 flushed before each replay, as decode runs in "
                "inference servers) where it worked, else the eager call from Python)", ""] + dec
    if data.get("plot"):
        out += ["", f"Plot: `{data['plot']}`"]
    return "\n".join(out) + "\n"


def plot(data: Dict, path: str) -> Optional[str]:
    """TFLOP/s vs seqlen, one subplot per (head dim, causal, mode); None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001 - optional
        return None
    rows = data.get("dense", [])
    if not rows:
        return None
    impls = ["flashplus"] + list(data["meta"]["peers"])
    groups = sorted({(r["head_dim"], r["causal"]) for r in rows})
    modes = [m for m in ("fwd", "bwd", "fwd_bwd") if any(r["mode"] == m for r in rows)]
    fig, axes = plt.subplots(len(groups), len(modes), squeeze=False,
                             figsize=(4.2 * len(modes), 3.2 * len(groups)))
    for i, (d, causal) in enumerate(groups):
        for j, mode in enumerate(modes):
            ax = axes[i][j]
            sel = sorted((r for r in rows if r["head_dim"] == d and r["causal"] == causal
                          and r["mode"] == mode), key=lambda r: r["seqlen"])
            for impl in impls:
                pts = [(r["seqlen"], r["results"][impl]["tflops"]) for r in sel
                       if r["results"].get(impl, {}).get("status") == "ok"]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, marker="o", label=impl,
                            linewidth=2.5 if impl == "flashplus" else 1.2)
            ax.set_xscale("log", base=2)
            ax.set_xticks([r["seqlen"] for r in sel])
            ax.set_xticklabels([_fmt_len(r["seqlen"]) for r in sel])
            ax.set_title(f"d={d} {'causal' if causal else 'non-causal'} {mode}", fontsize=9)
            ax.set_ylabel("TFLOP/s")
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle(f"{data['meta']['device_name']} {data['meta']['date']} "
                 f"(preset {data['meta'].get('preset')})", fontsize=10)
    # Keep ~0.45 inch above the panels for the title (tight_layout alone lets it overlap them).
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def console_table(data: Dict) -> str:
    peers = data["meta"]["peers"]
    head = (f"{'d':>4} {'seqlen':>6} {'b':>3} {'h':>3} {'causal':>6} {'mode':>7} "
            f"{'flashplus':>12}" + "".join(f" {p:>12}" for p in peers)
            + "".join(f" {'speedup/' + p:>17}" for p in peers))
    lines = ["TFLOP/s (speedup = flashplus TFLOP/s / peer's)", head]
    for row in data.get("dense", []):
        res = row["results"]
        lines.append(
            f"{row['head_dim']:>4} {_fmt_len(row['seqlen']):>6} {row['batch']:>3} "
            f"{row['heads']:>3} {'yes' if row['causal'] else 'no':>6} {row['mode']:>7} "
            f"{_cell(res['flashplus']):>12}" + "".join(f" {_cell(res.get(p)):>12}" for p in peers)
            + "".join(f" {_ratio(row['ratios'].get(p)):>17}" for p in peers))
    return "\n".join(lines)
