"""Teacher forcing: several denoisers evaluated on the same x_t, seen as ε̂, x̂₀, v̂ and û side by side.

Notation (Ho et al. 2020 eq. 5; KL of two isotropic Gaussians in D dimensions):

    code name      symbol                  meaning
    timesteps[k]   t_k                     0-based timesteps of the reference schedule (the first model's, the run's, or
                                           `schedule=`), in the order given: they name the noise levels compared
    own t_k        t_k^m                   each model's own timestep of the same level, matched by log SNR
                                           (`explorer.diffusion.noise_levels`); the model sees x_t at its own ᾱ(t_k^m)
                                           and converts with its own schedule. No common level: NaN and a note
    x_t[k]         x_{t_k}                 the shared inputs at the reference levels, [S, B, *shape]
    truth          ε, x₀, v, u             known when x₀ is given: x_t = √ᾱ x₀ + √(1−ᾱ) ε, ε from (seed, k);
                                           u = ε − x₀, the flow velocity of x_σ = (1 − σ) x₀ + σ ε at the σ of
                                           the same SNR (x_σ = x_t / (√ᾱ + √(1−ᾱ)); `explorer.diffusion.flow`)
    model.u[k]     û                       each prediction converted to u with the model's own ᾱ: a flow model
                                           (prediction "flow_prediction") is called like any other, on the VP x_t of
                                           its own level, and its û converts to ε̂, x̂₀, v̂ the same way;
                                           ‖u − û‖² = ‖x₀ − x̂₀‖² / σ² there (x₀ = x_σ − σ u)
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
from explorer.diffusion.noise_levels import LOG_SNR_TOLERANCE, UNMATCHED, match_log_snr
from explorer.diffusion.parameterization import Prediction, convert, v_from_x0_eps
from explorer.diffusion.posterior import VarianceType, q_posterior, q_sample, reverse_log_variance
from explorer.diffusion.schedules import Schedule, inference_timesteps
from explorer.diffusion.views import FOUR_VIEWS

FOUR_SPACES = tuple(view.prediction for view in FOUR_VIEWS)  # ε, x₀, v, u
ERROR_FIELDS = {view.prediction: f"{view.name}_mse" for view in FOUR_VIEWS}  # ModelForcing's error per space
DEFAULT_POINTS = 100
MAX_CHUNK = 256


@dataclass(frozen=True)
class ModelForcing:
    """One denoiser's predictions at the shared noise levels ([S, B, *shape], float32) in ε, x₀, v and the flow
    velocity u, and its per-step errors in each ([S]).

    timesteps and alphas_cumprod are the model's own (int64 / float64 [S]): −1 and NaN where it has no common
    level with the reference, and then its values are NaN and `note` says so.
    """

    name: str
    prediction: Prediction
    eps: torch.Tensor
    x0: torch.Tensor
    v: torch.Tensor
    u: torch.Tensor
    eps_mse: np.ndarray | None
    x0_mse: np.ndarray | None
    v_mse: np.ndarray | None
    u_mse: np.ndarray | None
    kl: np.ndarray | None  # L_{t−1} per dimension, t ≥ 2; NaN at t = 1 (L₀ is a decoder term, see the module notes)
    timesteps: np.ndarray | None = None  # int64 [S]: its own timestep of each level, −1 where none
    alphas_cumprod: np.ndarray | None = None  # float64 [S]: its own ᾱ there, NaN where none
    note: str | None = None  # the sentence saying where no common noise level exists


@dataclass(frozen=True)
class TeacherForcing:
    """The shared inputs, the truth when x₀ is known, and each model's view of them."""

    timesteps: np.ndarray  # int64 [S]
    x_t: torch.Tensor  # float32 [S, B, *shape]
    eps: torch.Tensor | None  # the truth, float32 [S, B, *shape], or None for a sampled trajectory
    x0: torch.Tensor | None
    v: torch.Tensor | None
    models: tuple[ModelForcing, ...]
    u: torch.Tensor | None = None  # the true flow velocity ε − x₀ (the same at every level), [S, B, *shape]

    @property
    def notes(self) -> tuple[str, ...]:
        """One sentence per model that has no common noise level with the reference at some of the timesteps."""
        return tuple(model.note for model in self.models if model.note)

    def target_rms(self) -> dict[str, np.ndarray]:
        """Root-mean-square size of each regression target per step ([S] each): what each network must output."""
        if self.eps is None:
            raise ValueError("target sizes need a known x₀")
        return {view.name: _mean_over_samples(getattr(self, view.name) ** 2) ** 0.5 for view in FOUR_VIEWS}


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


def _views(
    denoiser: Denoiser, output: torch.Tensor, x_t: torch.Tensor, alphas: np.ndarray
) -> dict[Prediction, torch.Tensor]:
    """The model's raw output [S, B, *shape] in ε, x₀, v and u, converted with its own ᾱ per step ([S], NaN rows:
    none). A conversion that divides by zero there (x̂₀ or û from ε̂ at ᾱ = 0) is NaN, never inf."""
    views = {}
    for target in FOUR_SPACES:
        per_step = []
        for k, a_t in enumerate(alphas):
            converted = None
            if np.isfinite(a_t):
                try:
                    converted = convert(output[k], denoiser.prediction, target, x_t[k], float(a_t))
                except ValueError:  # undefined at this ᾱ (the converters refuse instead of returning inf)
                    converted = None
            per_step.append(converted if converted is not None else torch.full_like(x_t[k], float("nan")))
        views[target] = torch.stack(per_step)
    return views


def teacher_force(
    denoisers: Sequence[Denoiser],
    *,
    x0: torch.Tensor | None = None,
    trajectory=None,  # explorer.diffusion.sampler.Trajectory
    timesteps: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
    schedule: Schedule | None = None,
    variance: str | VarianceType = VarianceType.FIXED_SMALL,
    tolerance: float = LOG_SNR_TOLERANCE,
) -> TeacherForcing:
    """Evaluate every denoiser at the same noise levels: q(x_t|x₀) draws of a known x₀ ([B, *shape], shared noise
    from (seed, k)), or the recorded x_t of a sampled trajectory. Errors and KL need x₀.

    timesteps: 0-based on the reference schedule (`schedule`, else the trajectory's, else the first denoiser's);
    default 100 evenly spaced over [0, T−1] (x₀ given) or the trajectory's own. Each model is called at its own
    timestep of the same log SNR (within `tolerance`) on x_t drawn at its own ᾱ there (the same ε), and converts
    with its own schedule; where it has no such level its values are NaN and its `note` says so.
    """
    if not denoisers:
        raise ValueError("teacher_force needs at least one denoiser")
    if (x0 is None) == (trajectory is None):
        raise ValueError("give exactly one of x0 (known data) or trajectory (a sampled run)")
    if schedule is None:
        schedule = trajectory.settings.schedule if trajectory is not None else denoisers[0].schedule
    variance = VarianceType.parse(variance)
    total = schedule.num_train_timesteps

    if trajectory is not None:
        steps = trajectory.timesteps if timesteps is None else np.asarray(timesteps, dtype=np.int64)
        by_timestep = {s.timestep: s.x_t for s in trajectory}
        missing = [int(t) for t in steps if int(t) not in by_timestep]
        if missing:
            raise ValueError(f"timesteps {missing[:5]} were not visited by the trajectory")
        x_t = torch.stack([by_timestep[int(t)] for t in steps]).double()  # [S, B, *shape]
        noise = clean = None
    else:
        default = inference_timesteps(total, min(total, DEFAULT_POINTS), "linspace")
        steps = default if timesteps is None else np.asarray(timesteps, dtype=np.int64)
        if steps.ndim != 1 or steps.size == 0 or steps.min() < 0 or steps.max() > total - 1:
            raise ValueError(f"timesteps must be a non-empty list of integers in [0, {total - 1}]")
        clean = x0.double()
        noise = torch.stack([step_noise(seed, k, tuple(clean.shape)).double() for k in range(steps.size)])
        x_t = torch.stack([q_sample(schedule, clean, int(t), noise[k]) for k, t in enumerate(steps)])

    results = []
    for denoiser in denoisers:
        match = match_log_snr(denoiser.schedule, schedule.log_snr[steps], tolerance)
        own, rows = match.timesteps, np.flatnonzero(match.matched)
        seen = x_t.clone()  # [S, B, *shape]: x_t at the model's own ᾱ (the reference's where it has no level)
        if clean is not None:
            for k in rows:
                seen[k] = q_sample(denoiser.schedule, clean, int(own[k]), noise[k])
        output = torch.full_like(seen, float("nan"))
        if rows.size:
            output[torch.from_numpy(rows)] = _predict_all(denoiser, seen[torch.from_numpy(rows)], own[rows])
        views = _views(denoiser, output, seen, match.alphas_cumprod)
        errors: dict[str, np.ndarray | None] = dict.fromkeys([*ERROR_FIELDS.values(), "kl"])
        if clean is not None:
            v_own = torch.stack(
                [
                    v_from_x0_eps(clean, noise[k], float(a)) if np.isfinite(a) else torch.full_like(clean, float("nan"))
                    for k, a in enumerate(match.alphas_cumprod)
                ]
            )
            truth = {
                Prediction.EPSILON: noise,
                Prediction.SAMPLE: clean.expand_as(x_t),
                Prediction.V_PREDICTION: v_own,
                Prediction.FLOW: noise - clean,  # u = ε − x₀ at every level: the flow path's velocity
            }
            for target, key in ERROR_FIELDS.items():
                errors[key] = _mean_over_samples((views[target] - truth[target]) ** 2)
            errors["kl"] = np.array(
                [
                    _kl_per_dimension(denoiser.schedule, clean, views[Prediction.SAMPLE][k], seen[k], int(t), variance)
                    if t != UNMATCHED
                    else float("nan")
                    for k, t in enumerate(own)
                ]
            )
        results.append(
            ModelForcing(
                name=denoiser.name,
                prediction=denoiser.prediction,
                eps=views[Prediction.EPSILON].float(),
                x0=views[Prediction.SAMPLE].float(),
                v=views[Prediction.V_PREDICTION].float(),
                u=views[Prediction.FLOW].float(),
                **errors,
                timesteps=own,
                alphas_cumprod=match.alphas_cumprod,
                note=match.refusal(denoiser.name, steps),
            )
        )
    truth_eps = truth_x0 = truth_v = truth_u = None
    if clean is not None:
        a = torch.from_numpy(schedule.alphas_cumprod[steps])  # [S]
        truth_v = torch.stack([v_from_x0_eps(clean, noise[k], a[k]) for k in range(steps.size)]).float()
        truth_eps, truth_x0, truth_u = noise.float(), clean.expand_as(x_t).float(), (noise - clean).float()
    return TeacherForcing(steps.astype(np.int64), x_t.float(), truth_eps, truth_x0, truth_v, tuple(results), u=truth_u)
