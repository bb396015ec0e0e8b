"""Teacher forcing: several denoisers evaluated on the same x_t, seen as ε̂, x̂₀ and v̂ side by side.

Notation (Ho et al. 2020 eq. 5; KL of two isotropic Gaussians in D dimensions):

    code name      symbol                  meaning
    timesteps[k]   t_k                     0-based timesteps evaluated, in the order given
    x_t[k]         x_{t_k}                 the shared inputs, [S, B, *shape]
    truth          ε, x₀, v                known when x₀ is given: x_t = √ᾱ x₀ + √(1−ᾱ) ε, ε from (seed, k)
    *_mse[k]       mean over batch and pixels of (prediction − truth)²
    kl[k]          L_{t−1} / D = KL(q(x_{t−1}|x_t,x₀) ‖ p_θ(x_{t−1}|x_t)) / D, in nats per dimension:
                   ½ [log(σ²/β̃) + β̃/σ² − 1] + ‖μ̃ − μ_θ‖² / (2σ² D),  μ_θ = μ̃(x̂₀, x_t),  for t ≥ 2 only.

Two terms of the bound L = L_T + Σ_{t≥2} L_{t−1} + L₀ are not in `kl`, and a figure of it must say so:
    L₀ = −log p_θ(x₀|x₁)          a decoder term (a likelihood of the data), not a KL between Gaussians: q(x₀|x₁,x₀)
                                  is a point mass (β̃_1 = 0). `kl` holds NaN at t = 1 (index 0) in its place.
    L_T = KL(q(x_T|x₀) ‖ N(0, I)) has no parameters (no network output enters it): not computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from explorer.diffusion.denoiser import Denoiser
from explorer.diffusion.noise import step_noise
from explorer.diffusion.parameterization import THREE_SPACES, Prediction, convert, v_from_x0_eps
from explorer.diffusion.posterior import VarianceType, q_posterior, q_sample, reverse_log_variance
from explorer.diffusion.schedules import Schedule, inference_timesteps
from explorer.diffusion.views import PREDICTION_VIEWS

DEFAULT_POINTS = 100
MAX_CHUNK = 256


@dataclass(frozen=True)
class ModelForcing:
    """One denoiser's predictions on the shared x_t ([S, B, *shape], float32) and its per-step errors ([S])."""

    name: str
    prediction: Prediction
    eps: torch.Tensor
    x0: torch.Tensor
    v: torch.Tensor
    eps_mse: np.ndarray | None
    x0_mse: np.ndarray | None
    v_mse: np.ndarray | None
    kl: np.ndarray | None  # L_{t−1} per dimension, t ≥ 2; NaN at t = 1 (L₀ is a decoder term, see the module notes)


@dataclass(frozen=True)
class TeacherForcing:
    """The shared inputs, the truth when x₀ is known, and each model's view of them."""

    timesteps: np.ndarray  # int64 [S]
    x_t: torch.Tensor  # float32 [S, B, *shape]
    eps: torch.Tensor | None  # the truth, float32 [S, B, *shape], or None for a sampled trajectory
    x0: torch.Tensor | None
    v: torch.Tensor | None
    models: tuple[ModelForcing, ...]

    def target_rms(self) -> dict[str, np.ndarray]:
        """Root-mean-square size of each regression target per step ([S] each): what each network must output."""
        if self.eps is None:
            raise ValueError("target sizes need a known x₀")
        return {view.name: _mean_over_samples(getattr(self, view.name) ** 2) ** 0.5 for view in PREDICTION_VIEWS}


def _mean_over_samples(values: torch.Tensor) -> np.ndarray:
    return values.reshape(values.shape[0], -1).double().mean(dim=1).numpy()


def _predict_all(denoiser: Denoiser, x_t: torch.Tensor, timesteps: np.ndarray) -> torch.Tensor:
    """The denoiser's raw output on every (step, sample), batched across steps: [S, B, *shape] float64."""
    steps, batch = x_t.shape[:2]
    flat_x = x_t.reshape(steps * batch, *x_t.shape[2:])
    flat_t = torch.from_numpy(np.repeat(timesteps, batch))
    chunk = max(batch, MAX_CHUNK - MAX_CHUNK % batch)
    outputs = []
    for start in range(0, flat_x.shape[0], chunk):
        x = flat_x[start : start + chunk].to(denoiser.device, denoiser.dtype)
        outputs.append(denoiser(x, flat_t[start : start + chunk].to(denoiser.device)).to("cpu", torch.float64))
    return torch.cat(outputs).reshape(x_t.shape)


def _kl_per_dimension(
    schedule: Schedule, x0: torch.Tensor, x0_hat: torch.Tensor, x_t: torch.Tensor, t: int, variance: VarianceType
) -> float:
    if t == 0:
        return float("nan")
    true = q_posterior(schedule, x0, x_t, t)
    model = q_posterior(schedule, x0_hat, x_t, t)
    log_var = reverse_log_variance(schedule, t, variance, x_t).reshape(-1)[0].item()
    model_var, true_var = float(np.exp(log_var)), float(schedule.posterior_variance[t])
    per_sample = ((true.mean - model.mean) ** 2).reshape(x_t.shape[0], -1).mean(dim=1) / (2 * model_var)
    return float(0.5 * (log_var - np.log(true_var) + true_var / model_var - 1) + per_sample.mean())


def teacher_force(
    denoisers: Sequence[Denoiser],
    *,
    x0: torch.Tensor | None = None,
    trajectory=None,  # explorer.diffusion.sampler.Trajectory
    timesteps: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
    schedule: Schedule | None = None,
    variance: str | VarianceType = VarianceType.FIXED_SMALL,
) -> TeacherForcing:
    """Evaluate every denoiser on the same x_t: q(x_t|x₀) draws of a known x₀ ([B, *shape], shared noise
    from (seed, k)), or the recorded x_t of a sampled trajectory. Errors and KL need x₀.

    timesteps: 0-based, default 100 evenly spaced over [0, T−1] (x₀ given) or the trajectory's own.
    """
    if not denoisers:
        raise ValueError("teacher_force needs at least one denoiser")
    if (x0 is None) == (trajectory is None):
        raise ValueError("give exactly one of x0 (known data) or trajectory (a sampled run)")
    schedule = schedule or denoisers[0].schedule
    for d in denoisers:
        if d.schedule.num_train_timesteps != schedule.num_train_timesteps:
            raise ValueError(f"every denoiser must share T = {schedule.num_train_timesteps}; {d.name} has another T")
    variance = VarianceType.parse(variance)
    total = schedule.num_train_timesteps

    if trajectory is not None:
        steps = trajectory.timesteps if timesteps is None else np.asarray(timesteps, dtype=np.int64)
        by_timestep = {s.timestep: s.x_t for s in trajectory}
        missing = [int(t) for t in steps if int(t) not in by_timestep]
        if missing:
            raise ValueError(f"timesteps {missing[:5]} were not visited by the trajectory")
        x_t = torch.stack([by_timestep[int(t)] for t in steps]).double()  # [S, B, *shape]
        truth = None
    else:
        default = inference_timesteps(total, min(total, DEFAULT_POINTS), "linspace")
        steps = default if timesteps is None else np.asarray(timesteps, dtype=np.int64)
        if steps.ndim != 1 or steps.size == 0 or steps.min() < 0 or steps.max() > total - 1:
            raise ValueError(f"timesteps must be a non-empty list of integers in [0, {total - 1}]")
        clean = x0.double()
        noise = torch.stack([step_noise(seed, k, tuple(clean.shape)).double() for k in range(steps.size)])
        x_t = torch.stack([q_sample(schedule, clean, int(t), noise[k]) for k, t in enumerate(steps)])
        a = torch.from_numpy(schedule.alphas_cumprod[steps])  # [S]
        v = torch.stack([v_from_x0_eps(clean, noise[k], a[k]) for k in range(steps.size)])
        truth = (noise, clean.expand_as(x_t), v)

    results = []
    for denoiser in denoisers:
        output = _predict_all(denoiser, x_t, steps)
        views = {}
        for target in THREE_SPACES:
            per_step = []
            for k, t in enumerate(steps):
                a_t = float(schedule.alphas_cumprod[t])
                if target is Prediction.EPSILON or denoiser.prediction is not Prediction.EPSILON or a_t > 0:
                    per_step.append(convert(output[k], denoiser.prediction, target, x_t[k], a_t))
                else:  # x̂₀ from ε̂ at ᾱ = 0 is undefined: shown as NaN, never as inf
                    per_step.append(torch.full_like(x_t[k], float("nan")))
            views[target] = torch.stack(per_step)
        errors: dict[str, np.ndarray | None] = {"eps_mse": None, "x0_mse": None, "v_mse": None, "kl": None}
        if truth is not None:
            for key, target, true in zip(("eps_mse", "x0_mse", "v_mse"), THREE_SPACES, truth, strict=True):
                errors[key] = _mean_over_samples((views[target] - true) ** 2)
            errors["kl"] = np.array(
                [
                    _kl_per_dimension(schedule, truth[1][k], views[Prediction.SAMPLE][k], x_t[k], int(t), variance)
                    for k, t in enumerate(steps)
                ]
            )
        results.append(
            ModelForcing(
                name=denoiser.name,
                prediction=denoiser.prediction,
                eps=views[Prediction.EPSILON].float(),
                x0=views[Prediction.SAMPLE].float(),
                v=views[Prediction.V_PREDICTION].float(),
                **errors,
            )
        )
    eps, x0_truth, v_truth = (None, None, None) if truth is None else (t.float() for t in truth)
    return TeacherForcing(steps.astype(np.int64), x_t.float(), eps, x0_truth, v_truth, tuple(results))
