"""flashplus.ring: context parallelism (ring attention) over torch.distributed.

The function names, parameters and returns are ring-flash-attn 0.1.x's, so existing callers
switch by changing the import. Beyond it: sliding windows, softcap (`softcap=` keyword) and GQA
in every variant, any world size, the `group` honoured, and shard/unshard helpers. Dropout and
ALiBi are rejected with an error (see autograd.reject_unsupported for why).

Each rank passes its shard of the sequence; layouts.py describes what each layout holds:
  ring_flash_attn_*            contiguous shards
  zigzag_ring_flash_attn_*     chunks r and 2N-1-r (balanced causal work)
  stripe_flash_attn_*          every N-th token (balanced causal work)
  llama3_flash_attn_varlen_*   all-gather K/V for a packed batch split evenly over ranks
The merge of partial results is flashplus_combine; forward and backward overlap the K/V (and
dK/dV) transfers with compute.
"""
from .api import (ring_flash_attn_func, ring_flash_attn_kvpacked_func,
                  ring_flash_attn_qkvpacked_func, ring_flash_attn_varlen_func,
                  ring_flash_attn_varlen_kvpacked_func, ring_flash_attn_varlen_qkvpacked_func,
                  stripe_flash_attn_func, stripe_flash_attn_kvpacked_func,
                  stripe_flash_attn_qkvpacked_func, stripe_flash_attn_varlen_func,
                  stripe_flash_attn_varlen_kvpacked_func, stripe_flash_attn_varlen_qkvpacked_func,
                  zigzag_ring_flash_attn_func, zigzag_ring_flash_attn_kvpacked_func,
                  zigzag_ring_flash_attn_qkvpacked_func, zigzag_ring_flash_attn_varlen_func,
                  zigzag_ring_flash_attn_varlen_kvpacked_func,
                  zigzag_ring_flash_attn_varlen_qkvpacked_func)
from .hf import substitute_hf_flash_attn, update_ring_flash_attn_params, use_ring_attn
from .layouts import (gather_unshard, local_cu_seqlens, shard, shard_varlen, stripe_shard,
                      stripe_unshard, unshard, unshard_varlen, zigzag_shard, zigzag_unshard)
from .llama3 import (llama3_flash_attn_prepare_cu_seqlens, llama3_flash_attn_varlen_func,
                     llama3_flash_attn_varlen_kvpacked_func,
                     llama3_flash_attn_varlen_qkvpacked_func)

__all__ = [
    "ring_flash_attn_func",
    "ring_flash_attn_kvpacked_func",
    "ring_flash_attn_qkvpacked_func",
    "ring_flash_attn_varlen_func",
    "ring_flash_attn_varlen_kvpacked_func",
    "ring_flash_attn_varlen_qkvpacked_func",
    "zigzag_ring_flash_attn_func",
    "zigzag_ring_flash_attn_kvpacked_func",
    "zigzag_ring_flash_attn_qkvpacked_func",
    "zigzag_ring_flash_attn_varlen_func",
    "zigzag_ring_flash_attn_varlen_kvpacked_func",
    "zigzag_ring_flash_attn_varlen_qkvpacked_func",
    "stripe_flash_attn_func",
    "stripe_flash_attn_kvpacked_func",
    "stripe_flash_attn_qkvpacked_func",
    "stripe_flash_attn_varlen_func",
    "stripe_flash_attn_varlen_kvpacked_func",
    "stripe_flash_attn_varlen_qkvpacked_func",
    "llama3_flash_attn_prepare_cu_seqlens",
    "llama3_flash_attn_varlen_func",
    "llama3_flash_attn_varlen_kvpacked_func",
    "llama3_flash_attn_varlen_qkvpacked_func",
    "substitute_hf_flash_attn",
    "update_ring_flash_attn_params",
    "use_ring_attn",
    "shard",
    "unshard",
    "shard_varlen",
    "unshard_varlen",
    "gather_unshard",
    "local_cu_seqlens",
    "zigzag_shard",
    "zigzag_unshard",
    "stripe_shard",
    "stripe_unshard",
]
