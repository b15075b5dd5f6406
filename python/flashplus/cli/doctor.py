"""python -m flashplus doctor: what is installed, what was compiled, and does it work here.

Prints versions (flashplus, flash-attn, torch, CUDA, driver), each GPU with its compute
capability, the library's build info (backends, archs, head dims, dtypes), then runs a small
self-test of every usable backend against a float32 torch computation of the same attention.
Exits 1 if the library cannot be loaded or any self-test fails.
"""
import ctypes
import json
import platform
import shutil
import subprocess
import sys
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from .. import __version__, _lib

TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 5e-2, torch.float32: 1e-4}


def _distribution_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:
        return "unknown"
    try:
        return version("flash-attn")
    except PackageNotFoundError:
        return "not installed as a distribution (running from a source tree?)"


def _driver_version() -> Optional[str]:
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            text = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=20).stdout.strip()
            if text:
                return text.splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        value = ctypes.c_int()
        if libcuda.cuDriverGetVersion(ctypes.byref(value)) == 0:
            return f"CUDA driver API {value.value // 1000}.{value.value % 1000 // 10}"
    except OSError:
        pass
    return None


def _gpus() -> List[Dict[str, Any]]:
    if not torch.cuda.is_available():
        return []
    gpus = []
    for i in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(i)
        gpus.append({"index": i, "name": torch.cuda.get_device_name(i),
                     "compute_capability": f"{major}.{minor}", "sm": f"sm{major}{minor}"})
    return gpus


def _attention_fp32(q, k, v, causal):
    """Plain float32 attention (b, s, h, d), GQA by repetition, bottom-right causal mask."""
    q, k, v = q.float(), k.float(), v.float()
    group = q.shape[2] // k.shape[2]
    k = k.repeat_interleave(group, dim=2)
    v = v.repeat_interleave(group, dim=2)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) * q.shape[-1] ** -0.5
    if causal:
        s_q, s_k = q.shape[1], k.shape[1]
        i = torch.arange(s_q, device=q.device).view(-1, 1)
        j = torch.arange(s_k, device=q.device).view(1, -1)
        scores = scores.masked_fill(j > i + s_k - s_q, float("-inf"))
    return torch.einsum("bhij,bjhd->bihd", torch.softmax(scores, dim=-1), v)


def _max_error(a, b) -> float:
    return float((a.detach().float() - b.detach().float()).abs().max())


def _dense_inputs(device: str, dtype, requires_grad: bool):
    gen = torch.Generator(device="cpu").manual_seed(0)
    shapes = ((2, 37, 4, 64), (2, 45, 2, 64), (2, 45, 2, 64), (2, 37, 4, 64))
    q, k, v, dout = (torch.randn(s, generator=gen).to(device, dtype) for s in shapes)
    return [t.requires_grad_(requires_grad) for t in (q, k, v)] + [dout]


def _self_test_dense_fwd(device: str, dtype) -> Tuple[bool, str]:
    from flash_attn import flash_attn_func

    q, k, v, _ = _dense_inputs(device, dtype, requires_grad=False)
    error = _max_error(flash_attn_func(q, k, v, causal=True), _attention_fp32(q, k, v, causal=True))
    return error <= TOLERANCE[dtype] * 4, f"out {error:.1e}"


def _self_test_dense_bwd(device: str, dtype) -> Tuple[bool, str]:
    from flash_attn import flash_attn_func

    q, k, v, dout = _dense_inputs(device, dtype, requires_grad=True)
    flash_attn_func(q, k, v, causal=True).backward(dout)
    leaves = [t.detach().float().requires_grad_() for t in (q, k, v)]
    _attention_fp32(*leaves, causal=True).backward(dout.float())
    errors = [_max_error(t.grad, r.grad) for t, r in zip((q, k, v), leaves)]
    return max(errors) <= TOLERANCE[dtype] * 4, "dq {:.1e}, dk {:.1e}, dv {:.1e}".format(*errors)


def _self_test_kvcache(device: str, dtype) -> Tuple[bool, str]:
    from flash_attn import flash_attn_with_kvcache

    gen = torch.Generator(device="cpu").manual_seed(1)
    b, s_cache, h, h_k, d, filled = 2, 64, 4, 2, 64, 29
    k_cache = torch.randn(b, s_cache, h_k, d, generator=gen).to(device, dtype)
    v_cache = torch.randn(b, s_cache, h_k, d, generator=gen).to(device, dtype)
    q = torch.randn(b, 1, h, d, generator=gen).to(device, dtype)
    k_new = torch.randn(b, 1, h_k, d, generator=gen).to(device, dtype)
    v_new = torch.randn(b, 1, h_k, d, generator=gen).to(device, dtype)
    out = flash_attn_with_kvcache(q, k_cache, v_cache, k_new, v_new, cache_seqlens=filled,
                                  causal=True)
    keys, values = k_cache[:, :filled + 1], v_cache[:, :filled + 1]
    appended = _max_error(keys[:, filled:], k_new) + _max_error(values[:, filled:], v_new)
    error = _max_error(out, _attention_fp32(q, keys, values, causal=True))
    ok = appended == 0 and error <= TOLERANCE[dtype] * 4
    return ok, f"decode {error:.1e}, append {'exact' if appended == 0 else 'WRONG'}"


_CUDA_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
_TESTS: List[Tuple[str, Callable]] = [("dense causal GQA forward", _self_test_dense_fwd),
                                      ("dense causal GQA backward", _self_test_dense_bwd),
                                      ("kvcache decode + append", _self_test_kvcache)]


def _backends(info: Dict[str, Any]) -> List[Tuple[str, torch.dtype, bool]]:
    """(device, dtype, has_backward) for every backend this build can run here."""
    backends = [("cpu", torch.float32, True), ("cpu", torch.bfloat16, True)]
    lib = _lib.load()
    cuda = info.get("backends", {}).get("cuda", {})
    for gpu in _gpus():
        if lib.flashplus_backend_status(_lib.DEVICE_CUDA, gpu["index"]) != _lib.STATUS_OK:
            continue
        for name in cuda.get("dtypes", []):
            if name in _CUDA_DTYPES:
                backends.append((f"cuda:{gpu['index']}", _CUDA_DTYPES[name],
                                 bool(cuda.get("backward", False))))
    return backends


def _run_tests(info: Dict[str, Any]) -> List[Dict[str, Any]]:
    results = []
    for device, dtype, has_backward in _backends(info):
        for name, test in _TESTS:
            row = {"backend": device, "dtype": str(dtype).replace("torch.", ""), "test": name}
            if test is _self_test_dense_bwd and not has_backward:
                results.append(dict(row, ok=True, skipped=True,
                                    detail="not in this build (build_info: backward false)"))
                continue
            try:
                ok, detail = test(device, dtype)
            except Exception as exc:  # a failing backend is reported, not fatal to the report
                ok, detail = False, f"{type(exc).__name__}: {exc}"
                traceback.print_exc(file=sys.stderr)
            results.append(dict(row, ok=ok, detail=detail))
    return results


def collect() -> Dict[str, Any]:
    import flash_attn

    report: Dict[str, Any] = {
        "flashplus": __version__,
        "flash_attn": flash_attn.__version__,
        "flash_attn_distribution": _distribution_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "driver": _driver_version(),
        "gpus": _gpus(),
        "library_path": _lib.library_path(),
    }
    try:
        _lib.load()
    except ImportError as exc:
        report["library_error"] = str(exc)
        return report
    report["library_version"] = _lib.version()
    report["build_info"] = json.loads(_lib.build_info_json())
    statuses = {"cpu": _lib.load().flashplus_backend_status(_lib.DEVICE_CPU, 0)}
    cuda_index = report["gpus"][0]["index"] if report["gpus"] else 0
    statuses["cuda"] = _lib.load().flashplus_backend_status(_lib.DEVICE_CUDA, cuda_index)
    report["backend_status"] = {
        name: "ok" if status == _lib.STATUS_OK else
        f"{_lib.status_name(status)}: {_lib.last_error()}" for name, status in statuses.items()}
    report["self_test"] = _run_tests(report["build_info"])
    return report


def _print(report: Dict[str, Any]) -> None:
    line = "{:<26}{}".format
    for key in ("flashplus", "flash_attn", "flash_attn_distribution", "python", "platform",
                "torch", "torch_cuda", "cuda_available", "driver", "library_path",
                "library_version"):
        if key in report:
            print(line(key, report[key]))
    for gpu in report["gpus"]:
        print(line(f"gpu {gpu['index']}", f"{gpu['name']} (compute capability "
                                          f"{gpu['compute_capability']}, {gpu['sm']})"))
    if "library_error" in report:
        print(f"\nFAIL: {report['library_error']}")
        return
    info = report["build_info"]
    print(line("build preset", info.get("preset")))
    for name, backend in info.get("backends", {}).items():
        details = ", ".join(f"{k}={v}" for k, v in backend.items() if k != "variants")
        print(line(f"backend {name}", details or backend))
    cuda = info.get("backends", {}).get("cuda", {})
    if not cuda.get("compiled"):
        print("note: this build has the CPU backend only (nvcc was not found when it was built); "
              "CUDA tensors will raise NotCompiledError. Reinstall with nvcc on PATH for GPUs.")
    for name, status in report["backend_status"].items():
        print(line(f"status {name}", status))
    print("\nself-test (against float32 torch):")
    for r in report["self_test"]:
        mark = "SKIP" if r.get("skipped") else "PASS" if r["ok"] else "FAIL"
        print(f"  {mark}  {r['backend']:<8} {r['dtype']:<9} {r['test']:<27} {r['detail']}")


def ok(report: Dict[str, Any]) -> bool:
    return "library_error" not in report and all(r["ok"] for r in report.get("self_test", []))


def run(args) -> int:
    report = collect()
    if getattr(args, "json", False):
        print(json.dumps(report, indent=2, default=str))
    else:
        _print(report)
    passed = ok(report)
    if not getattr(args, "json", False):
        print("\ndoctor: " + ("all checks passed" if passed else "FAILED (see above)"))
    return 0 if passed else 1
