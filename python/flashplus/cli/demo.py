"""python -m flashplus demo: one attention call of each kind, checked, on the best device.

Shows the three entry points a model uses (dense training step, packed varlen batch, KV-cache
decode), each compared with a float32 torch computation, so a reader sees what the library
does and that it agrees with the math.
"""
import torch

from ..errors import NotCompiledError, UnsupportedError
from .doctor import _attention_fp32, _max_error


def run(args) -> int:
    try:
        _run()
    except (UnsupportedError, NotCompiledError) as exc:
        print(f"stopped: this build cannot run that here: {exc}")
    return 0


def _run() -> None:
    from flash_attn import flash_attn_func, flash_attn_varlen_func, flash_attn_with_kvcache

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    print(f"flashplus demo on {device}, {str(dtype).replace('torch.', '')}")

    q = torch.randn(2, 128, 8, 64, device=device, dtype=dtype, requires_grad=True)
    k = torch.randn(2, 128, 2, 64, device=device, dtype=dtype, requires_grad=True)
    v = torch.randn(2, 128, 2, 64, device=device, dtype=dtype, requires_grad=True)
    out = flash_attn_func(q, k, v, causal=True)
    ref = _attention_fp32(q.detach(), k.detach(), v.detach(), causal=True)
    print(f"1. flash_attn_func, causal GQA 8:2 heads, b=2 s=128 d=64: out {tuple(out.shape)}, "
          f"max error {_max_error(out, ref):.2e}")
    try:
        out.sum().backward()
        print(f"   backward: grads {tuple(q.grad.shape)}, {tuple(k.grad.shape)}")
    except UnsupportedError as exc:
        print(f"   backward: not in this build ({str(exc).split(';')[0]})")

    lengths = [5, 100, 23]
    cu = torch.tensor([0, 5, 105, 128], dtype=torch.int32, device=device)
    qv, kv, vv = (torch.randn(128, 4, 64, device=device, dtype=dtype) for _ in range(3))
    out = flash_attn_varlen_func(qv, kv, vv, cu, cu, max(lengths), max(lengths), causal=True)
    errors = [_max_error(out[a:b], _attention_fp32(qv[None, a:b], kv[None, a:b], vv[None, a:b],
                                                   causal=True)[0])
              for a, b in zip(cu[:-1].tolist(), cu[1:].tolist())]
    print(f"2. flash_attn_varlen_func, sequences {lengths} packed in one (128, 4, 64) tensor: "
          f"max error {max(errors):.2e}")

    k_cache = torch.zeros(2, 256, 2, 64, device=device, dtype=dtype)
    v_cache = torch.zeros_like(k_cache)
    seqlens = torch.zeros(2, dtype=torch.int32, device=device)
    for step in range(4):
        qd = torch.randn(2, 1, 8, 64, device=device, dtype=dtype)
        kn, vn = (torch.randn(2, 1, 2, 64, device=device, dtype=dtype) for _ in range(2))
        out = flash_attn_with_kvcache(qd, k_cache, v_cache, kn, vn, cache_seqlens=seqlens,
                                      causal=True)
        seqlens += 1
    n = int(seqlens[0])
    ref = _attention_fp32(qd, k_cache[:, :n], v_cache[:, :n], causal=True)
    print(f"3. flash_attn_with_kvcache, 4 decode steps appending into a (2, 256, 2, 64) cache: "
          f"max error {_max_error(out, ref):.2e}")
