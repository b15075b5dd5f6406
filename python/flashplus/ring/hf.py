"""Hugging Face transformers integration: models attend through llama3-style context parallelism.

transformers (>= 4.48) looks the attention function up by name in AttentionInterface at every
forward (`ALL_ATTENTION_FUNCTIONS[config._attn_implementation]`), so registering a function
under "flash_attention_2" reroutes every model loaded with attn_implementation=
"flash_attention_2". We also register it as "flashplus_ring", which a model can select without
transformers' flash-attn availability checks (and for which it builds no attention mask).

Usage, on every rank of `group`:
    substitute_hf_flash_attn(group, heads_k_stride=1)
    for batch in loader:               # sequences packed into one row, batch size 1
        update_ring_flash_attn_params(cu_seqlens, group)   # global cu_seqlens, int32
        model(input_ids=local_ids, position_ids=local_position_ids)
Each rank feeds tokens [rank T/N, (rank+1) T/N) of the packed batch (T divisible by N) with
their true position_ids (positions within their sequence), so RoPE sees the right offsets.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.distributed as dist

from .llama3 import llama3_flash_attn_prepare_cu_seqlens, llama3_flash_attn_varlen_func

REGISTERED_NAMES = ("flash_attention_2", "flashplus_ring")

_batch_params: Dict[Optional[dist.ProcessGroup], "_BatchParams"] = {}
_enabled = True


class _BatchParams:
    """The current batch's global cu_seqlens and, per causal flag, this rank's prepared slice."""

    def __init__(self, cu_seqlens: torch.Tensor, group):
        self.cu_seqlens = cu_seqlens
        self.group = group
        self._prepared: Dict[bool, Tuple] = {}

    def prepared(self, causal: bool) -> Tuple:
        if causal not in self._prepared:
            self._prepared[causal] = llama3_flash_attn_prepare_cu_seqlens(
                self.cu_seqlens, causal, dist.get_rank(self.group), dist.get_world_size(self.group))
        return self._prepared[causal]


def update_ring_flash_attn_params(cu_seqlens: torch.Tensor, process_group) -> None:
    """Set the packed batch's global cu_seqlens (int32, on the model's device) for the next
    forward; call it for every batch, on every rank of the group."""
    params = _BatchParams(cu_seqlens.to(torch.int32), process_group)
    params.prepared(True)  # the common case, computed once per batch rather than per layer
    _batch_params[process_group] = params


def use_ring_attn(flag: bool) -> None:
    """Switch ring attention off (True to switch it back on): registered names then run
    transformers' own flash_attention_2 function, e.g. for an evaluation pass on one rank."""
    global _enabled
    _enabled = bool(flag)


def _target_dtype(query: torch.Tensor, module) -> Optional[torch.dtype]:
    # Like transformers: fp32 activations (PEFT upcasts, autocast) run in the compute dtype.
    if query.dtype != torch.float32:
        return None
    device_type = query.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    linear = next((m for m in module.modules() if isinstance(m, torch.nn.Linear)), None)
    return None if linear is None else linear.weight.dtype


def _make_attention_forward(process_group, heads_k_stride: int, fallback):
    def ring_attention_forward(module, query, key, value, attention_mask, dropout=0.0,
                               scaling=None, sliding_window=None, softcap=None, is_causal=None,
                               **kwargs):
        if not _enabled:
            return fallback(module, query, key, value, attention_mask, dropout=dropout,
                            scaling=scaling, sliding_window=sliding_window, softcap=softcap,
                            is_causal=is_causal, **kwargs)
        params = _batch_params.get(process_group)
        if params is None:
            raise RuntimeError("flashplus.ring: call update_ring_flash_attn_params(cu_seqlens, "
                               "group) for this batch before the model's forward")
        if query.shape[0] != 1:
            raise ValueError(f"flashplus.ring: ring attention takes packed batches of size 1, got "
                             f"batch size {query.shape[0]}; pack the sequences into one row")
        causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
        # transformers' convention: a window of `sliding_window` tokens including the current one.
        window = (sliding_window - 1, sliding_window - 1) if sliding_window else (-1, -1)
        dtype = _target_dtype(query, module)
        # (1, h, s, d) -> (s, h, d), the varlen layout.
        q, k, v = (t.transpose(1, 2)[0] for t in (query, key, value))
        if dtype is not None:
            q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
        cu_q, cu_k, max_q, max_k, k_slice = params.prepared(bool(causal))
        out = llama3_flash_attn_varlen_func(
            q, k, v, cu_q, cu_k, max_q, max_k, heads_k_stride, k_slice, dropout_p=dropout,
            softmax_scale=scaling, causal=bool(causal), window_size=window,
            deterministic=kwargs.get("deterministic") or False, group=process_group,
            softcap=softcap or 0.0)
        return out.unsqueeze(0).to(query.dtype), None

    return ring_attention_forward


def substitute_hf_flash_attn(process_group, heads_k_stride: int = 1) -> None:
    """Make transformers models that use flash_attention_2 (or "flashplus_ring") attend with
    ring attention over `process_group`, `heads_k_stride` K/V heads gathered at a time."""
    from transformers import AttentionInterface
    from transformers.integrations.flash_attention import flash_attention_forward

    forward = _make_attention_forward(process_group, heads_k_stride, flash_attention_forward)
    for name in REGISTERED_NAMES:
        AttentionInterface.register(name, forward)
