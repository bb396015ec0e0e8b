"""The index convention, stated once and enforced here: every conversion between step numbers goes through it.

    name            range       meaning
    t               1..T        the paper's step (Ho et al. 2020): what the page shows and formulas are written in
    timestep        0..T−1      diffusers' 0-based timestep: the model's input and the index into every
                                `Schedule` table (index i holds paper step t = i + 1)
    timestep −1     (t = 0)     "past the last step": the data x₀ itself (ᾱ_0 = 1), where a run ends
    k               0..S−1      position of a step in a run of S steps (runs visit descending timesteps)
    frame           1..S        what the page shows for step k: frame = k + 1

`tests/test_indexing.py` reads the package and the UI and fails on any inline ±1 applied to a step number outside
this module. A step that lands one paper step earlier is `previous_t(t)`, a neighbour in a run is indexed directly.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

PAPER_OFFSET = 1  # paper t − diffusers timestep
FRAME_OFFSET = 1  # frame − position k in a run

N = TypeVar("N", int, np.ndarray)


def _shift(value: N, by: int) -> N:
    if isinstance(value, np.ndarray):
        return value.astype(np.int64) + by
    return int(value) + by


def paper_t(timestep: N) -> N:
    """Paper step t (1..T) of diffusers' 0-based timestep (an int or an int array); −1 (the data) gives t = 0."""
    return _shift(timestep, PAPER_OFFSET)


def timestep_of(t: N) -> N:
    """Diffusers' 0-based timestep / table index of paper step t (1..T); an int or an int array."""
    return _shift(t, -PAPER_OFFSET)


def previous_t(t: int) -> int:
    """The paper step a single reverse step from t lands on: t − 1 (0 is the data x₀)."""
    return int(t) - 1


def frame_of(k: N) -> N:
    """The frame number (1..S) the page shows for position k (0..S−1) of a run."""
    return _shift(k, FRAME_OFFSET)


def position_of(frame: N) -> N:
    """Position k (0..S−1) in a run of the frame number the page shows (1..S)."""
    return _shift(frame, -FRAME_OFFSET)
