"""Memorization against training-set size: does a model copy its training examples, or do two models trained on
disjoint halves of the data (twins) make the same new sample from the same noise? (Kadkhodaie et al., ICLR 2024;
Carlini et al. 2023.)

    code name        meaning                                                          shape
    samples_a/_b     the twins' samples from the same noise (row s of each from x_T number s)   [S, D] (flattened)
    train_a/_b       the twins' disjoint training sets                                [N, D]
    own_a[s]         ‖a_s − (nearest example of train_a)‖: distance to its own data   [S]
    other_a[s]       ‖a_s − (nearest example of train_b)‖: distance to the twin's data [S]
    twin[s]          ‖a_s − b_s‖: how far apart the twins' samples are                [S]
    spacing_a        median over train_a of each example's distance to its nearest other example (the set's own scale)
    copies (a)       own_a[s] < COPY_FRACTION · spacing_a
    agrees           twin[s] < own_a[s] and twin[s] < own_b[s]: closer to each other than to either's nearest
                     training example
    slope            p of a median distance ∝ N^p over the largest training-set sizes (`loglog_slope`)

The threshold of a copy is a fixed fraction of the training set's own spacing, the same rule at every N, so that a
copy means "much closer to one training example than the training examples are to each other". A fresh draw from the
data distribution lands that close by chance with a probability `chance_copy_fraction` measures (≈ 4 % in 2-D).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

COPY_FRACTION = 0.25  # a sample copies when it is within this fraction of the training set's median spacing
_CHUNK = 1024  # rows of the distance matrix computed at once
_EXACT = "donot_use_mm_for_euclid_dist"  # differences, not ‖x‖² − 2x·y + ‖y‖², which loses tiny distances


def _flat(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).reshape(len(x), -1).double()


def nearest(queries: torch.Tensor, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query [Q, ...] its nearest row of data [N, ...] (Euclidean, flattened): (distance float64 [Q],
    index int64 [Q])."""
    q, d = _flat(queries), _flat(data)
    if len(d) == 0:
        raise ValueError("nearest needs at least one data row")
    distances, indices = [], []
    for start in range(0, len(q), _CHUNK):
        block = torch.cdist(q[start : start + _CHUNK], d, compute_mode=_EXACT)  # [chunk, N]
        value, index = block.min(dim=1)
        distances.append(value)
        indices.append(index)
    return torch.cat(distances), torch.cat(indices)


def median_spacing(data: torch.Tensor) -> float:
    """Median over the rows of data [N, ...] (N ≥ 2) of the distance to the nearest other row."""
    d = _flat(data)
    if len(d) < 2:
        raise ValueError(f"the spacing of a training set needs at least 2 examples; got {len(d)}")
    spacing = []
    for start in range(0, len(d), _CHUNK):
        block = torch.cdist(d[start : start + _CHUNK], d, compute_mode=_EXACT)  # [chunk, N]
        rows = torch.arange(start, min(start + _CHUNK, len(d)))
        block[rows - start, rows] = float("inf")  # not its own nearest neighbour
        spacing.append(block.min(dim=1).values)
    return float(np.median(torch.cat(spacing).numpy()))  # the mean of the middle two when N is even


@dataclass(frozen=True)
class TwinComparison:
    """Twin samples from the same noise against both training sets (distances float64 [S]; nearest_* int64 [S]
    index the named training set)."""

    train_size: int
    own_a: np.ndarray  # ‖a − nearest of train_a‖
    own_b: np.ndarray  # ‖b − nearest of train_b‖
    other_a: np.ndarray  # ‖a − nearest of train_b‖
    other_b: np.ndarray  # ‖b − nearest of train_a‖
    twin: np.ndarray  # ‖a − b‖
    nearest_own_a: np.ndarray  # index into train_a
    nearest_own_b: np.ndarray  # index into train_b
    nearest_other_a: np.ndarray  # index into train_b
    nearest_other_b: np.ndarray  # index into train_a
    spacing_a: float  # median nearest-neighbour distance within train_a
    spacing_b: float

    @property
    def copies_a(self) -> np.ndarray:
        """bool [S]: sample a_s lies within COPY_FRACTION · spacing_a of an example of its own training set."""
        return self.own_a < COPY_FRACTION * self.spacing_a

    @property
    def copies_b(self) -> np.ndarray:
        return self.own_b < COPY_FRACTION * self.spacing_b

    @property
    def agrees(self) -> np.ndarray:
        """bool [S]: the twins' samples are closer to each other than each is to its own nearest training example."""
        return (self.twin < self.own_a) & (self.twin < self.own_b)

    @property
    def copy_fraction(self) -> float:
        """Fraction of both twins' samples that copy an example of their own training set."""
        return float(np.concatenate([self.copies_a, self.copies_b]).mean())

    @property
    def agreement(self) -> float:
        """Fraction of noises from which the twins agree (`agrees`)."""
        return float(self.agrees.mean())


def compare_twins(
    samples_a: torch.Tensor, samples_b: torch.Tensor, train_a: torch.Tensor, train_b: torch.Tensor
) -> TwinComparison:
    """Distances of twin samples [S, ...] (row s of each from the same noise) to each other and to the training sets
    [N, ...] (N ≥ 2 each, the same N)."""
    if samples_a.shape != samples_b.shape:
        raise ValueError(
            f"twin samples must have the same shape; got {tuple(samples_a.shape)} and {tuple(samples_b.shape)}"
        )
    if len(train_a) != len(train_b):
        raise ValueError(f"twin training sets must have the same size; got {len(train_a)} and {len(train_b)}")
    own_a, nearest_own_a = nearest(samples_a, train_a)
    own_b, nearest_own_b = nearest(samples_b, train_b)
    other_a, nearest_other_a = nearest(samples_a, train_b)
    other_b, nearest_other_b = nearest(samples_b, train_a)
    twin = (_flat(samples_a) - _flat(samples_b)).norm(dim=1)
    return TwinComparison(
        train_size=len(train_a),
        own_a=own_a.numpy(),
        own_b=own_b.numpy(),
        other_a=other_a.numpy(),
        other_b=other_b.numpy(),
        twin=twin.numpy(),
        nearest_own_a=nearest_own_a.numpy(),
        nearest_own_b=nearest_own_b.numpy(),
        nearest_other_a=nearest_other_a.numpy(),
        nearest_other_b=nearest_other_b.numpy(),
        spacing_a=median_spacing(train_a),
        spacing_b=median_spacing(train_b),
    )


def chance_copy_fraction(fresh: torch.Tensor, train: torch.Tensor) -> float:
    """Fraction of fresh draws from the data distribution [M, ...] that count as copies of train [N, ...]: the copy
    fraction of a model that samples the true distribution without looking at its data."""
    distance, _ = nearest(fresh, train)
    return float((distance < COPY_FRACTION * median_spacing(train)).double().mean())


SLOPE_SIZES = 3  # the exponents of the distance curves are fitted over this many of the largest N


def loglog_slope(sizes: list[int] | np.ndarray, values: list[float] | np.ndarray) -> float:
    """The exponent p of values ∝ N^p: least-squares slope of log(values) against log(sizes) (≥ 2 sizes, all values
    > 0)."""
    x, y = np.log(np.asarray(sizes, dtype=float)), np.asarray(values, dtype=float)
    if len(x) < 2 or len(x) != len(y) or np.any(y <= 0):
        raise ValueError(f"a slope needs ≥ 2 sizes and as many positive values; got {len(x)} and {y.tolist()}")
    return float(np.polyfit(x, np.log(y), 1)[0])


def distance_slopes(curves: dict) -> dict[str, float]:
    """Exponents over the SLOPE_SIZES largest N of a measured record's curves (`scripts/memorization.py`): how fast the
    twins' samples come together (`median_twin_distance`) against how fast a sample's nearest own training example
    comes closer (`median_own_distance`). Empty when fewer than SLOPE_SIZES sizes were measured."""
    sizes = curves["sizes"][-SLOPE_SIZES:]
    if len(sizes) < SLOPE_SIZES:
        return {}
    return {
        key: loglog_slope(sizes, curves[key][-SLOPE_SIZES:]) for key in ("median_twin_distance", "median_own_distance")
    }


def power_text(p: float) -> str:
    """An exponent as the page writes it: signed, two decimals, a true minus sign ("−0.47", "+0.76")."""
    return f"{p:+.2f}".replace("-", "−")
