"""python -m flashplus bench: a CPU smoke run writes the JSON, markdown and table it promises.

The GPU sweep itself (SDPA backends, L2 flush, peak memory, copy bandwidth) runs only on a CUDA
machine; the parts of it that need one are skipped here.
"""
import json
import subprocess
import sys

import pytest
import torch


def bench(tmp_path, *args, timeout=300):
    result = subprocess.run([sys.executable, "-m", "flashplus", "bench", *args,
                             "--out", str(tmp_path)], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads((tmp_path / "results.json").read_text())


def test_cpu_quick(tmp_path):
    result, data = bench(tmp_path, "--device", "cpu", "--quick", "--no-plot")
    meta = data["meta"]
    for key in ("date", "device", "device_name", "dtype", "torch", "preset", "commit",
                "peers", "tokens", "hidden", "elapsed_s", "copy_bandwidth_GBps"):
        assert key in meta, key
    assert meta["device"] == "cpu" and meta["peers"] == ["MATH"]
    modes = {row["mode"] for row in data["dense"]}
    assert modes == {"fwd", "bwd", "fwd_bwd"}
    assert {row["causal"] for row in data["dense"]} == {False, True}
    for row in data["dense"]:
        b, h, s, d = row["batch"], row["heads"], row["seqlen"], row["head_dim"]
        assert b * s == meta["tokens"] and h * d == meta["hidden"]
        fwd = 4 * b * h * s * s * d / (2 if row["causal"] else 1)
        assert row["flops"] == pytest.approx(fwd * {"fwd": 1, "bwd": 2.5, "fwd_bwd": 3.5}[row["mode"]])
        ours, peer = row["results"]["flashplus"], row["results"]["MATH"]
        assert ours["status"] == "ok" and peer["status"] == "ok", row
        assert ours["ms"] > 0 and ours["tflops"] > 0
        assert row["ratios"]["MATH"] == pytest.approx(peer["ms"] / ours["ms"])
    assert data["memory"] == []  # peak memory is CUDA only
    assert data["decode"], "decode rows"
    for row in data["decode"]:
        assert row["layout"] in ("contiguous", "paged")
        assert row["flashplus"]["status"] == "ok" and row["flashplus"]["GBps"] > 0
        assert row["fraction_of_copy"] == pytest.approx(
            row["flashplus"]["GBps"] / meta["copy_bandwidth_GBps"])
        assert row["ratio_vs_sdpa"] > 0
        # FA2 (SDPA's FLASH backend) may refuse a CPU GQA call; then its ratio is absent.
        fa2 = row["fa2"]
        assert (row["ratio_vs_fa2"] > 0) if fa2["status"] == "ok" else row["ratio_vs_fa2"] is None
    names = [t["name"] for t in data["targets"]]
    assert len(names) == 3 and all(t["met"] in (True, False, None) for t in data["targets"])
    section = (tmp_path / "RESULTS_section.md").read_text()
    assert "### Targets" in section and "| d | seqlen |" in section
    assert section.strip() in result.stdout
    assert "speedup/MATH" in result.stdout


def test_options(tmp_path):
    _, data = bench(tmp_path, "--device", "cpu", "--heads-dims", "32", "--seqlens", "64",
                    "--modes", "fwd", "--causal", "no", "--tokens", "128", "--hidden", "64",
                    "--no-decode", "--repeats", "1", "--no-plot")
    assert [(r["head_dim"], r["seqlen"], r["mode"], r["causal"]) for r in data["dense"]] == [
        (32, 64, "fwd", False)]
    assert data["decode"] == [] and data["dense"][0]["batch"] == 2


def test_report_targets_and_not_compiled():
    from flashplus.bench import report, sweep

    ok = lambda ms: {"status": "ok", "ms": ms, "tflops": 1.0 / ms}  # noqa: E731
    rows = []
    for s, ours, flash in ((512, 1.05, 1.0), (1024, 1.0, 1.1), (2048, 1.0, 1.2)):
        results = {"flashplus": ok(ours), "FLASH": ok(flash),
                   "CUDNN": {"status": "n/a", "detail": "refused"}}
        rows.append({"head_dim": 128, "seqlen": s, "batch": 1, "heads": 16, "causal": False,
                     "mode": "fwd", "flops": 1.0, "results": results,
                     "ratios": sweep.ratios(results, ["FLASH", "CUDNN"])})
    rows.append({"head_dim": 256, "seqlen": 1024, "batch": 1, "heads": 8, "causal": True,
                 "mode": "bwd", "flops": 1.0,
                 "results": {"flashplus": {"status": "not compiled", "detail": "x"},
                             "FLASH": ok(1.0), "CUDNN": ok(1.0)},
                 "ratios": {"FLASH": None, "CUDNN": None}})
    assert rows[0]["ratios"]["CUDNN"] is None
    assert rows[1]["ratios"]["FLASH"] == pytest.approx(1.1)
    data = {"dense": rows, "memory": [{"head_dim": 128, "seqlen": 1024, "batch": 1, "heads": 16,
                                       "causal": False, "ratio": 1.2,
                                       "results": {"flashplus": {"status": "ok", "bytes": 12},
                                                   "FLASH": {"status": "ok", "bytes": 10}}}],
            "decode": [{"batch": 1, "context": 8192, "layout": "paged", "fraction_of_copy": 0.8,
                        "flashplus": ok(1.0), "sdpa": ok(2.0), "ratio_vs_sdpa": 2.0}]}
    t = report.targets(data)
    assert t[0]["met"] is True and "not compiled" in t[0]["detail"]
    assert t[1]["met"] is True
    assert t[2]["met"] is False
    rows[0]["ratios"]["FLASH"] = 0.85  # below the 0.9x floor at seqlen 512
    assert report.targets(data)[0]["met"] is False
    data["meta"] = {"peers": ["FLASH", "CUDNN"]}
    table = "\n".join(report.dense_table(data))
    assert "not compiled" in table and "n/a" in table


def test_error_classification():
    from flashplus.bench import sweep
    from flashplus.errors import NotCompiledError, UnsupportedError

    assert sweep.classify_error(NotCompiledError("x"), True) == "not compiled"
    assert sweep.classify_error(UnsupportedError("x"), True) == "not compiled"
    assert sweep.classify_error(RuntimeError("No available kernel"), False) == "n/a"
    assert sweep.classify_error(RuntimeError("CUDA out of memory"), False) == "oom"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_quick(tmp_path):
    _, data = bench(tmp_path, "--quick", "--seqlens", "1k", "--decode-batches", "1",
                    "--decode-contexts", "8k", "--no-plot", timeout=600)
    assert data["meta"]["peers"] == ["FLASH", "CUDNN", "EFFICIENT"]
    assert data["meta"]["copy_bandwidth_GBps"] > 0
    assert data["memory"] and data["decode"]
    for row in data["dense"]:
        assert row["results"]["flashplus"]["status"] in ("ok", "not compiled")
