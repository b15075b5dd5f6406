"""python -m flashplus doctor / demo / bench run and report what the issue asks for."""
import json
import subprocess
import sys

import torch


def run(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "flashplus", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_doctor():
    result = run("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    for field in ("flashplus", "torch", "driver", "build preset", "backend cpu", "backend cuda",
                  "self-test", "PASS  cpu"):
        assert field in result.stdout
    if torch.cuda.is_available():
        assert "compute capability" in result.stdout and "PASS  cuda" in result.stdout


def test_doctor_json():
    result = run("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["build_info"]["backends"]["cpu"]["compiled"] is True
    assert report["self_test"] and all(r["ok"] for r in report["self_test"])


def test_doctor_fails_without_library(tmp_path):
    import os

    env = dict(os.environ, FLASHPLUS_LIBRARY=str(tmp_path / "missing.so"))
    result = run("doctor", env=env)
    assert result.returncode == 1
    assert "not found" in result.stdout


def test_demo():
    result = run("demo")
    assert result.returncode == 0, result.stderr
    assert "flash_attn_with_kvcache" in result.stdout


def test_bench_smoke(tmp_path):
    result = run("bench", "--repeats", "1", "--device", "cpu", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "speedup" in result.stdout
