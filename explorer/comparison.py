"""Teacher forcing for the ε/x₀/v comparison: several denoisers on the same x_t, errors in every space.

For known data x₀ and fixed noise ε, x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε (eq. 4). Each model's output is converted to
ε̂, x̂₀ and v̂ (`explorer.convert`) and compared with the truth (ε, x₀, v = √ᾱ_t ε − √(1−ᾱ_t) x₀). The per-step
KL term of the variational bound (Ho et al. eq. 5) with σ_t² = β̃_t is ‖μ̃_t(x₀, x_t) − μ̃_t(x̂₀, x_t)‖² / (2 β̃_t),
summed over dimensions and averaged over the batch (t ≥ 2; at t = 1 the bound has a decoder term instead).
A stand-in until `explorer.teacher` lands; same inputs, same meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from explorer.parameterization import Prediction, convert, v_from_x0_eps
from explorer.posterior import q_posterior, q_sample

SPACES = (Prediction.EPSILON, Prediction.SAMPLE, Prediction.V_PREDICTION)


@dataclass(frozen=True)
class ModelErrors:
    """One model's errors over the steps: mse[space] float64 [S]; kl float64 [S] (NaN at t = 1)."""

    name: str
    prediction: Prediction
    mse: dict[Prediction, np.ndarray]
    kl: np.ndarray


@dataclass(frozen=True)
class TeacherForcing:
    """Errors of every model at the 0-based `timesteps` [S], and the RMS of each true target per step."""

    timesteps: np.ndarray  # int64 [S], ascending
    models: tuple[ModelErrors, ...]
    target_rms: dict[Prediction, np.ndarray]  # float64 [S]


def teacher_force(denoisers: Sequence, x0: torch.Tensor, timesteps: Sequence[int], *, seed: int = 0) -> TeacherForcing:
    """Run each denoiser on the same x_t (same x₀ [B, ...], same ε from `seed`) at each timestep."""
    schedule = denoisers[0].schedule
    x0 = x0.to(torch.float64)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    steps = np.asarray(sorted(set(int(t) for t in timesteps)), dtype=np.int64)
    mse = {model.name: {space: [] for space in SPACES} for model in denoisers}
    kl: dict[str, list[float]] = {model.name: [] for model in denoisers}
    rms = {space: [] for space in SPACES}
    for t in steps:
        abar = float(schedule.alphas_cumprod[t])
        x_t = q_sample(schedule, x0, int(t), noise=eps)
        truth = {Prediction.EPSILON: eps, Prediction.SAMPLE: x0, Prediction.V_PREDICTION: v_from_x0_eps(x0, eps, abar)}
        for space in SPACES:
            rms[space].append(float(truth[space].pow(2).mean().sqrt()))
        exact = q_posterior(schedule, x0, x_t, int(t))
        for model in denoisers:
            with torch.no_grad():
                output = model(x_t.to(model.device, model.dtype), int(t)).cpu().to(torch.float64)
            for space in SPACES:
                try:
                    guess = convert(output, model.prediction, space, x_t, abar)
                    mse[model.name][space].append(float((guess - truth[space]).pow(2).mean()))
                except ValueError:  # undefined here (ᾱ = 0 with ε-prediction)
                    mse[model.name][space].append(float("nan"))
            if t == 0:
                kl[model.name].append(float("nan"))
                continue
            x0_hat = convert(output, model.prediction, Prediction.SAMPLE, x_t, abar)
            predicted = q_posterior(schedule, x0_hat, x_t, int(t))
            squared = (exact.mean - predicted.mean).pow(2).flatten(1).sum(dim=1)
            kl[model.name].append(float((squared / (2 * exact.variance.flatten())).mean()))
    models = tuple(
        ModelErrors(
            model.name,
            model.prediction,
            {space: np.asarray(mse[model.name][space]) for space in SPACES},
            np.asarray(kl[model.name]),
        )
        for model in denoisers
    )
    return TeacherForcing(steps, models, {space: np.asarray(v) for space, v in rms.items()})
