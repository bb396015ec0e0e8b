"""Randomness from an explicit seed only: x_T and the noise of step k are functions of (seed, k).

Each stream gets its own generator, seeded by NumPy's SeedSequence from (seed, stream), and is drawn on
the CPU in float32, so every device, dtype and model sees the same numbers, any frame can be recomputed,
and the first samples of a batch do not change when the batch grows.
"""

from __future__ import annotations

import numpy as np
import torch

_INITIAL_STREAM = 0


def generator_for(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for stream `stream` (≥ 0) of `seed` (≥ 0)."""
    state = np.random.SeedSequence([int(seed), int(stream)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def initial_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """x_T ~ N(0, I) for `seed`: float32 [B, *sample_shape] on the CPU."""
    return torch.randn(shape, generator=generator_for(seed, _INITIAL_STREAM))


def step_noise(seed: int, index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """z_k ~ N(0, I) added by reverse step k (0-based position in the run): float32 [B, *shape] on the CPU."""
    return torch.randn(shape, generator=generator_for(seed, index + 1))
