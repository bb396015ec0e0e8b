"""Sample-quality metrics of the bundled models (pure functions) and the targets they must meet.

digits  confidence        mean top-class probability of the metric classifier (`tools.classifier`),
                          beside the same on the 1,000 held-out real digits; class fractions of the samples
        Fréchet distance  between Gaussians fitted to the classifier's penultimate features of two sets
        novelty           mean pixel L2 distance from each sample to its nearest training digit
2-D     energy distance   V-statistic 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖, divided by the same between independent
                          draws of the data (≈ 1 for a perfect model)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.data import NUM_CLASSES, Dataset, digits, points
from tools.classifier import DigitClassifier

ENERGY_RATIO_LIMIT = 3.0
CONFIDENCE_TARGET = 0.85
MAX_CLASS_FRACTION = 0.20
BASELINE_PAIRS = 5
FRESH_DATA_SEED = 10_000  # data seeds for the 2-D metrics; the training pools use the run's seed (0)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [N, D] and b [M, D]."""
    from scipy import linalg

    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # near-singular product: regularise, as the FID reference code does
        eye = np.eye(a.shape[1]) * 1e-6
        root = linalg.sqrtm((cov_a + eye) @ (cov_b + eye))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * np.real(root)))


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """V-statistic energy distance 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ between point sets x [N, D] and y [M, D]."""
    x, y = x.double(), y.double()
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def nearest_distance(queries: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """L2 distance [N] from each query [N, ...] to its nearest reference [M, ...] (flattened)."""
    return torch.cdist(queries.flatten(1).double(), references.flatten(1).double()).min(dim=1).values


@dataclass(frozen=True)
class DigitsQuality:
    """Quality of a digits model's samples, each figure beside its real-data reference."""

    samples: int
    mean_confidence: float  # mean top-class probability on the samples
    real_mean_confidence: float  # the same on the 1,000 held-out real digits
    real_accuracy: float  # classifier accuracy on the held-out digits
    class_fractions: tuple[float, ...]  # [10] share of samples per predicted class
    frechet: float  # samples vs held-out, classifier features
    real_frechet: float  # as many seeded training digits as samples (at most 4,000) vs the held-out digits
    nearest_train_l2: float  # mean pixel L2 from a sample to its nearest training digit
    real_nearest_train_l2: float  # the same for held-out digits

    @property
    def passes(self) -> bool:
        fractions = self.class_fractions
        return self.mean_confidence >= CONFIDENCE_TARGET and min(fractions) > 0 and max(fractions) <= MAX_CLASS_FRACTION


@dataclass(frozen=True)
class PointsQuality:
    """Quality of a 2-D model's samples."""

    samples: int
    energy: float  # samples vs n fresh data points
    baseline_energy: float  # mean over BASELINE_PAIRS pairs of independent n-point data draws
    ratio: float  # energy / baseline_energy

    @property
    def passes(self) -> bool:
        return self.ratio <= ENERGY_RATIO_LIMIT


@torch.inference_mode()
def digits_quality(images: torch.Tensor, classifier: DigitClassifier, seed: int = 0) -> DigitsQuality:
    """Score samples [N, 1, 16, 16] (in [-1, 1]) against the real digits."""
    train, held_out = digits("train"), digits("held_out")
    probs = classifier(images.float()).softmax(dim=1)  # [N, 10]
    real_probs = classifier(held_out.images).softmax(dim=1)  # [1000, 10]
    counts = torch.bincount(probs.argmax(dim=1), minlength=NUM_CLASSES).double()
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(seed))
    subset = order[: len(images)]  # the real-vs-real floor uses as many digits as there are samples
    features = classifier.features(images.float()).double().numpy()
    real_features = classifier.features(held_out.images).double().numpy()
    train_features = classifier.features(train.images[subset]).double().numpy()
    return DigitsQuality(
        samples=len(images),
        mean_confidence=float(probs.max(dim=1).values.mean()),
        real_mean_confidence=float(real_probs.max(dim=1).values.mean()),
        real_accuracy=float((real_probs.argmax(dim=1) == held_out.labels).double().mean()),
        class_fractions=tuple(float(c) for c in counts / counts.sum()),
        frechet=frechet_distance(features, real_features),
        real_frechet=frechet_distance(train_features, real_features),
        nearest_train_l2=float(nearest_distance(images, train.images).mean()),
        real_nearest_train_l2=float(nearest_distance(held_out.images, train.images).mean()),
    )


def points_quality(samples: torch.Tensor, data: Dataset) -> PointsQuality:
    """Score 2-D samples [N, 2] against fresh draws of `data` (moons or ring)."""
    n = len(samples)
    energy = energy_distance(samples, points(data, n, FRESH_DATA_SEED))
    pairs = [(FRESH_DATA_SEED + 1 + 2 * k, FRESH_DATA_SEED + 2 + 2 * k) for k in range(BASELINE_PAIRS)]
    baseline = float(np.mean([energy_distance(points(data, n, a), points(data, n, b)) for a, b in pairs]))
    return PointsQuality(samples=n, energy=energy, baseline_energy=baseline, ratio=energy / baseline)
