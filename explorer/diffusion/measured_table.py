"""The parameterization table measured: per t, each target's size and each model's error in every space.

Built from a teacher-forcing result on known x₀ (`explorer.diffusion.teacher.teacher_force`), so that every model
saw the same x_t (at its own timestep of the same log SNR). The flow velocity u = ε − x₀ is a fourth space: a flow
model (moons-flow, ring-flow, digits-flow) predicts it, and every other prediction converts into it (û = ε̂ − x̂₀, the
velocity of the flow path x_σ = (1 − σ) x₀ + σ ε at the σ of the same SNR; `weighting`). A flow model's
`ModelErrors.target` is `Prediction.FLOW`, its own error errors[FLOW], and its x₀ error is that times σ²:

    ‖u − û‖² = ‖x₀ − x̂₀‖² / σ²,  σ = 1 / (1 + √SNR),  because x₀ = x_σ − σ u at the same x_σ.

    code name             symbol                   meaning, one value per t ([S], float64)
    timesteps             t − 1                    diffusers' 0-based timesteps (paper t via `indexing.paper_t`)
    snr, alpha_cumprod    SNR_t, ᾱ_t               the schedule's
    m2                    E‖x₀‖²/D                 the mean square of the x₀ used (one number)
    rms[target]           √(mean (target)²)        measured over the batch and the dimensions
    closed_rms[target]    `weighting.target_rms`   its expectation for ε ~ N(0, I) independent of x₀
    errors[target]        mean (target − target̂)²  one model's teacher-forced MSE in that space
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.diffusion.parameterization import Prediction
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.teacher import TeacherForcing
from explorer.diffusion.weighting import target_rms

_FIELDS = {Prediction.EPSILON: "eps", Prediction.SAMPLE: "x0", Prediction.V_PREDICTION: "v", Prediction.FLOW: "u"}


@dataclass(frozen=True)
class ModelErrors:
    """One model's teacher-forced MSE per t in each of the four spaces ([S] float64 each)."""

    name: str
    target: Prediction  # what the model itself predicts
    errors: dict[Prediction, np.ndarray]

    def own(self) -> np.ndarray:
        """The error in the model's own space: what its (uniform) training loss measured."""
        return self.errors[self.target]


@dataclass(frozen=True)
class MeasuredTable:
    """Per-t sizes of the four targets, measured and closed-form, and every model's errors."""

    timesteps: np.ndarray  # int64 [S], ascending
    snr: np.ndarray  # [S]
    alpha_cumprod: np.ndarray  # [S]
    m2: float
    samples: int  # values averaged per t and target: batch × dimensions
    rms: dict[Prediction, np.ndarray]
    closed_rms: dict[Prediction, np.ndarray]
    models: tuple[ModelErrors, ...]

    def model(self, name: str) -> ModelErrors:
        """The errors of the model called `name`; ValueError naming the ones measured otherwise."""
        for model in self.models:
            if model.name == name:
                return model
        raise ValueError(f"no model named {name!r} was measured; measured: {', '.join(m.name for m in self.models)}")


def _mean_square(values: torch.Tensor) -> np.ndarray:
    """[S, B, *shape] → [S]: the mean of values² over the batch and the dimensions, float64."""
    return values.reshape(values.shape[0], -1).double().pow(2).mean(dim=1).numpy()


def own_v(truth: dict[Prediction, torch.Tensor], alphas_cumprod: np.ndarray) -> torch.Tensor:
    """v = √ᾱ ε − √(1−ᾱ) x₀ of the true ε and x₀ ([S, B, *shape]) at one model's own ᾱ per t ([S]; NaN: none)."""
    a = torch.from_numpy(np.asarray(alphas_cumprod, dtype=np.float64))  # [S]
    a = a.reshape(-1, *([1] * (truth[Prediction.EPSILON].ndim - 1)))
    return a.sqrt() * truth[Prediction.EPSILON].double() - (1 - a).sqrt() * truth[Prediction.SAMPLE].double()


def measure_table(result: TeacherForcing, schedule: Schedule) -> MeasuredTable:
    """The measured table of a teacher-forcing `result` made from known x₀ (its timesteps in any order)."""
    if result.eps is None or result.x0 is None:
        raise ValueError("the measured table needs teacher forcing on known x₀ (not a sampled trajectory)")
    order = np.argsort(result.timesteps, kind="stable")
    steps = result.timesteps[order]
    truth = {target: getattr(result, field)[order] for target, field in _FIELDS.items()}  # u = ε − x₀ included
    alpha_cumprod = schedule.alphas_cumprod[steps]
    m2 = float(truth[Prediction.SAMPLE][0].double().pow(2).mean())
    models = []
    for forced in result.models:
        predicted = {target: getattr(forced, field)[order] for target, field in _FIELDS.items()}  # û from teacher
        own = dict(truth)
        if forced.alphas_cumprod is not None:  # v's truth at the model's own level of each t (teacher.py)
            own[Prediction.V_PREDICTION] = own_v(truth, forced.alphas_cumprod[order])
        errors = {target: _mean_square(predicted[target].double() - own[target].double()) for target in Prediction}
        models.append(ModelErrors(forced.name, forced.prediction, errors))
    return MeasuredTable(
        timesteps=steps.astype(np.int64),
        snr=schedule.snr[steps],
        alpha_cumprod=alpha_cumprod,
        m2=m2,
        samples=int(truth[Prediction.EPSILON][0].numel()),
        rms={target: np.sqrt(_mean_square(values)) for target, values in truth.items()},
        closed_rms={target: target_rms(target, alpha_cumprod, m2) for target in Prediction},
        models=tuple(models),
    )


def crossings(t: np.ndarray, first: np.ndarray, second: np.ndarray) -> list[float]:
    """Where two positive curves over ascending t cross: t interpolated linearly on log(first / second).

    NaN values (an undefined conversion) are skipped; a curve that touches without changing sign is not a crossing.
    """
    gap = np.log(np.asarray(first, dtype=np.float64)) - np.log(np.asarray(second, dtype=np.float64))
    keep = np.isfinite(gap)
    t, gap = np.asarray(t, dtype=np.float64)[keep], gap[keep]
    change = np.flatnonzero(gap[:-1] * gap[1:] < 0)
    return [float(t[k] + (t[k + 1] - t[k]) * gap[k] / (gap[k] - gap[k + 1])) for k in change]
