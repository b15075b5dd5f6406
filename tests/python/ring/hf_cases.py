"""Worker side of the transformers test: a tiny random Llama run with ring attention on a packed
batch split over the ranks, against the same model run on each sequence alone (eager attention)
in float64 (the oracle) and float32 (the same-precision baseline). Logits and the gradients of
all parameters (summed over ranks) are compared."""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.distributed as dist


def _model(attn_implementation: str, dtype: torch.dtype, sliding_window):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    common = dict(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  attention_dropout=0.0)
    torch.manual_seed(1234)  # the same weights on every rank and for every attention
    if sliding_window is None:
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**common, use_sliding_window=True,
                                             sliding_window=sliding_window, max_window_layers=0,
                                             layer_types=["sliding_attention"] * 2))
    model.config._attn_implementation = attn_implementation
    return model.to(dtype)


def _per_sequence(model, ids: torch.Tensor, lengths: Sequence[int], weights: torch.Tensor):
    """Logits of each sequence run alone; loss = sum(logits * weights); parameter grads."""
    logits, start = [], 0
    for n in lengths:
        piece = ids[start:start + n].view(1, n)
        logits.append(model(input_ids=piece, position_ids=torch.arange(n).view(1, n)).logits[0])
        start += n
    logits = torch.cat(logits)
    (logits * weights.to(logits.dtype)).sum().backward()
    return logits.detach(), {name: p.grad for name, p in model.named_parameters()}


def _positions(lengths: Sequence[int]) -> torch.Tensor:
    return torch.cat([torch.arange(n) for n in lengths])


def llama(rank: int, world_size: int, lengths: Sequence[int], attn_implementation: str,
          sliding_window=None) -> Dict[str, Tuple[float, float]]:
    from flashplus.ring import substitute_hf_flash_attn, update_ring_flash_attn_params

    lengths = list(lengths)
    total = sum(lengths)
    generator = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 96, (total,), generator=generator)
    weights = torch.randn(total, 96, generator=generator)

    ref_logits, ref_grads = _per_sequence(_model("eager", torch.float64, sliding_window), ids,
                                          lengths, weights)
    base_logits, base_grads = _per_sequence(_model("eager", torch.float32, sliding_window), ids,
                                            lengths, weights)

    substitute_hf_flash_attn(None, heads_k_stride=1)
    model = _model(attn_implementation, torch.float32, sliding_window)
    cu = torch.tensor([0] + [sum(lengths[:i + 1]) for i in range(len(lengths))], dtype=torch.int32)
    update_ring_flash_attn_params(cu, None)
    mine = slice(rank * total // world_size, (rank + 1) * total // world_size)
    logits = model(input_ids=ids[mine].view(1, -1),
                   position_ids=_positions(lengths)[mine].view(1, -1)).logits[0]
    (logits * weights[mine]).sum().backward()
    for p in model.parameters():
        dist.all_reduce(p.grad)

    metrics = {"logits": ((logits.double() - ref_logits[mine]).abs().max().item(),
                          (base_logits[mine].double() - ref_logits[mine]).abs().max().item())}
    for name, p in model.named_parameters():
        metrics[name] = ((p.grad.double() - ref_grads[name]).abs().max().item(),
                         (base_grads[name].double() - ref_grads[name]).abs().max().item())
    return metrics


def registered_names(rank: int, world_size: int) -> List[str]:
    from transformers import AttentionInterface

    from flashplus.ring import substitute_hf_flash_attn
    from flashplus.ring.hf import REGISTERED_NAMES

    substitute_hf_flash_attn(None)
    interface = AttentionInterface()
    return [name for name in REGISTERED_NAMES
            if getattr(interface[name], "__name__", "") == "ring_attention_forward"]
