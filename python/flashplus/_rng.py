"""Philox (seed, offset) pairs for dropout, drawn from torch's default generators.

Why from torch: torch.manual_seed must make flashplus dropout reproducible, as it does for
flash-attn. On CUDA the pair is (initial seed, current offset) of the device's default
generator, whose offset is then advanced, so no device-to-host copy is needed; on CPU (or a
torch whose generator has no offset API) a 63-bit seed is drawn from the CPU default generator.
The forward returns the pair as rng_state = int64 [seed, offset] and the backward reuses it.
"""
from typing import Tuple

import torch

_U64 = (1 << 64) - 1
# Offsets of torch's CUDA generator must stay multiples of 4; one slot per call is enough because
# the offset only has to differ between calls (it is a Philox counter word, see dropout_philox.h).
_OFFSET_STEP = 4


def draw(device: torch.device) -> Tuple[int, int]:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        gen = torch.cuda.default_generators[index]
        if hasattr(gen, "get_offset") and hasattr(gen, "set_offset"):
            offset = gen.get_offset()
            gen.set_offset(offset + _OFFSET_STEP)
            return gen.initial_seed() & _U64, offset
    seed = int(torch.randint(0, (1 << 63) - 1, (), dtype=torch.int64))
    return seed, 0


def to_state(seed: int, offset: int, device: torch.device) -> torch.Tensor:
    """int64 [seed, offset] (uint64 values reinterpreted as signed), on `device`."""
    signed = [x - (1 << 64) if x >= (1 << 63) else x for x in (seed & _U64, offset & _U64)]
    return torch.tensor(signed, dtype=torch.int64).to(device)


def from_state(rng_state: torch.Tensor) -> Tuple[int, int]:
    seed, offset = rng_state.reshape(-1)[:2].tolist()
    return seed & _U64, offset & _U64
