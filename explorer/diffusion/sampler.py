"""Reverse sampling that records every step: DDPM ancestral and DDIM, on any grid of timesteps.

Notation (Ho et al. 2020, Algorithm 2 and eq. 7; Song et al. 2021, "DDIM", eq. 12):

    code name        symbol                  meaning
    timesteps[k]     t_k                     0-based timestep visited at step k (descending; paper t = t_k + 1)
    prev_timestep    s = t_{k+1}             the timestep the step lands on; −1 means x_0 (ᾱ = 1)
    x_t              x_t                     the state entering step k, [B, *shape]
    model_output     f_θ(x_t, t)             in the denoiser's own parameterization
    eps, x0, v       ε̂, x̂₀, v̂               the same prediction in all three spaces (fp32 or better)
    x0_clipped       clip(x̂₀, ±r)            what the step uses (x0 itself when clipping is off)
    mean             μ_θ                     DDPM: μ̃(x̂₀, x_t) of q(x_s|x_t,x̂₀); DDIM: √ᾱ_s x̂₀ + √(1−ᾱ_s−σ²) ε̂
    std              σ                       DDPM: √β̃, √β or learned; DDIM: η √β̃ (β̃ of the jump t → s)
    noise            z                       N(0, I), derived from (seed, k) alone
    x_prev           x_s = μ_θ + σ z         σ = 0 on the final step (DDPM's "z = 0 if t = 1")

A jump t → s is the one-step posterior of the respaced schedule (`Schedule.respace`), so DDPM with fewer
steps, DDIM and the full 1000-step chain share one formula. The model is always called with its own
0-based timestep; with `schedule=` the sampler follows another noise schedule on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import torch

from explorer.diffusion.denoiser import Denoiser
from explorer.diffusion.noise import initial_noise, step_noise
from explorer.diffusion.parameterization import Prediction, convert
from explorer.diffusion.posterior import VarianceType, q_posterior, reverse_log_variance
from explorer.diffusion.schedules import Schedule, TimestepSpacing, inference_timesteps
from explorer.diffusion.tensors import append_dims
from explorer.modes import parse_mode

MAX_BATCH_SIZE = 4096
MAX_BATCH_ELEMENTS = 2**22  # numbers in one [B, *shape] tensor: 16 MiB in float32
MAX_SEED = 2**63 - 1


class SamplerKind(StrEnum):
    """The reverse update: DDPM ancestral sampling, or DDIM (η = 0 deterministic, η = 1 DDPM-like)."""

    DDPM = "ddpm"
    DDIM = "ddim"

    @classmethod
    def parse(cls, value: str | SamplerKind) -> SamplerKind:
        return parse_mode(cls, value, "sampler")


@dataclass(frozen=True)
class SamplerSettings:
    """Everything that determines a run besides the denoiser. timesteps: visiting order, descending."""

    sampler: SamplerKind
    timesteps: tuple[int, ...]
    eta: float
    variance: VarianceType
    clip_sample: bool
    clip_range: float
    seed: int
    batch_size: int
    schedule: Schedule = field(repr=False)
    spacing: TimestepSpacing = TimestepSpacing.LEADING

    @property
    def num_inference_steps(self) -> int:
        return len(self.timesteps)


@dataclass(frozen=True)
class Step:
    """One reverse step k, as CPU tensors [B, *shape] (std broadcastable: [B, 1, ..., 1] or [B, *shape]).

    x_prev == mean + std * noise holds exactly; timestep and prev_timestep are 0-based (−1 = the end).
    """

    index: int
    timestep: int
    prev_timestep: int
    x_t: torch.Tensor
    model_output: torch.Tensor
    eps: torch.Tensor
    x0: torch.Tensor
    x0_clipped: torch.Tensor
    v: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    noise: torch.Tensor
    x_prev: torch.Tensor

    @property
    def nbytes(self) -> int:
        tensors = (self.x_t, self.model_output, self.eps, self.x0, self.x0_clipped, self.v)
        tensors += (self.mean, self.std, self.noise, self.x_prev)
        return sum(t.numel() * t.element_size() for t in tensors)


@dataclass(frozen=True)
class Trajectory(Sequence[Step]):
    """A recorded run: steps[k] goes from timesteps[k] to timesteps[k+1]; samples is the final x_0 [B, *shape]."""

    denoiser_name: str
    prediction: Prediction
    settings: SamplerSettings
    steps: tuple[Step, ...]

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index):  # type: ignore[override]
        return self.steps[index]

    @property
    def x_T(self) -> torch.Tensor:
        return self.steps[0].x_t

    @property
    def samples(self) -> torch.Tensor:
        return self.steps[-1].x_prev

    @property
    def timesteps(self) -> np.ndarray:
        return np.array([s.timestep for s in self.steps], dtype=np.int64)

    @property
    def nbytes(self) -> int:
        """Bytes held by the recorded tensors (x_prev shares no storage with the next x_t)."""
        return sum(step.nbytes for step in self.steps)

    def compact(self):
        """The fp16 form the UI keeps per session (see `explorer.diffusion.trajectory.CompactTrajectory`)."""
        from explorer.diffusion.trajectory import CompactTrajectory

        return CompactTrajectory.from_trajectory(self)


# --- settings ----------------------------------------------------------------------------------


def _check_number(name: str, value: float, low: float, high: float, integer: bool = False) -> None:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and low <= value <= high and (not integer or float(value).is_integer())
    if not ok:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} in [{low:g}, {high:g}]; got {value!r}")


def resolve_settings(
    denoiser: Denoiser,
    *,
    sampler: str | SamplerKind = SamplerKind.DDPM,
    num_inference_steps: int | None = None,
    eta: float = 0.0,
    variance: str | VarianceType | None = None,
    batch_size: int = 1,
    seed: int = 0,
    clip_sample: bool | None = None,
    schedule: Schedule | None = None,
    spacing: str | TimestepSpacing = TimestepSpacing.LEADING,
    clip_range: float = 1.0,
    timesteps: Sequence[int] | None = None,
) -> SamplerSettings:
    """Validate the arguments of `sample` and fill each None with the checkpoint's own setting."""
    kind = SamplerKind.parse(sampler)
    spacing = TimestepSpacing.parse(spacing)
    schedule = denoiser.schedule if schedule is None else schedule
    total = schedule.num_train_timesteps
    if total != denoiser.schedule.num_train_timesteps:
        raise ValueError(
            f"schedule must have the model's T = {denoiser.schedule.num_train_timesteps} steps; got T = {total}"
        )
    if timesteps is None:
        steps = total if num_inference_steps is None else num_inference_steps
        _check_number("num_inference_steps", steps, 1, total, integer=True)
        visited = inference_timesteps(total, int(steps), spacing)
    else:
        visited = np.asarray(timesteps, dtype=np.int64)
        if visited.ndim != 1 or visited.size == 0 or np.any(np.diff(visited) >= 0):
            raise ValueError("timesteps must be a non-empty, strictly descending sequence")
        if visited[-1] < 0 or visited[0] > total - 1:
            raise ValueError(f"timesteps must lie in [0, {total - 1}]")
    _check_number("eta", eta, 0.0, 1.0)
    per_sample = math.prod(denoiser.sample_shape)
    _check_number("batch_size", batch_size, 1, min(MAX_BATCH_SIZE, MAX_BATCH_ELEMENTS // per_sample), integer=True)
    _check_number("seed", seed, 0, MAX_SEED, integer=True)
    _check_number("clip_range", clip_range, 1e-3, 1e3)
    variance = denoiser.variance_type if variance is None else VarianceType.parse(variance)
    if variance is VarianceType.LEARNED_RANGE and not denoiser.learned_variance:
        raise ValueError(f"variance 'learned_range' needs a learned-variance model; {denoiser.name} is not one")
    if denoiser.prediction is Prediction.EPSILON and schedule.alphas_cumprod[visited[0]] == 0.0:
        raise ValueError(
            "x̂₀ is undefined at t = T for an ε-prediction model when ᾱ_T = 0 (zero terminal SNR): start below "
            "T (spacing 'leading'), use a schedule without zero terminal SNR, or use a v-prediction model"
        )
    return SamplerSettings(
        sampler=kind,
        timesteps=tuple(int(t) for t in visited),
        eta=float(eta),
        variance=variance,
        clip_sample=denoiser.clip_sample if clip_sample is None else bool(clip_sample),
        clip_range=float(clip_range),
        seed=int(seed),
        batch_size=int(batch_size),
        schedule=schedule,
        spacing=spacing,
    )


# --- one step ----------------------------------------------------------------------------------


def reverse_step(
    settings: SamplerSettings,
    jumps: Schedule,
    index: int,
    x_t: torch.Tensor,
    model_output: torch.Tensor,
    prediction: Prediction,
    noise: torch.Tensor,
    variance_values: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One reverse step k = `index`, pure: x_t, model_output, noise [B, *shape] in the compute dtype.

    `jumps` is the sampling schedule respaced to the visited timesteps, so its table index for step k is
    n − 1 − k and its posterior is that of the jump t_k → t_{k+1}. Returns the tensors of a `Step`.
    """
    n = len(settings.timesteps)
    j = n - 1 - index  # table index of t_k in the respaced schedule
    final = index == n - 1
    a_t = float(jumps.alphas_cumprod[j])

    eps = convert(model_output, prediction, Prediction.EPSILON, x_t, a_t)
    x0 = convert(model_output, prediction, Prediction.SAMPLE, x_t, a_t)
    v = convert(model_output, prediction, Prediction.V_PREDICTION, x_t, a_t)
    if not (torch.isfinite(x0).all() and torch.isfinite(eps).all()):
        t = settings.timesteps[index] + 1
        raise FloatingPointError(f"the model's output is not finite (NaN or inf) at step {index + 1} of {n} (t = {t})")
    x0_clipped = x0.clamp(-settings.clip_range, settings.clip_range) if settings.clip_sample else x0

    if settings.sampler is SamplerKind.DDPM:
        mean = q_posterior(jumps, x0_clipped, x_t, j).mean
        log_var = reverse_log_variance(jumps, j, settings.variance, x_t, variance_values)
        std = (0.5 * log_var).exp() if not final else torch.zeros_like(log_var)
    else:
        a_prev = float(jumps.alphas_cumprod_prev[j])
        sigma = settings.eta * math.sqrt(float(jumps.posterior_variance[j]))
        direction = math.sqrt(max(1.0 - a_prev - sigma**2, 0.0))
        mean = math.sqrt(a_prev) * x0_clipped + direction * eps
        std = append_dims(torch.tensor(0.0 if final else sigma, dtype=x_t.dtype, device=x_t.device), x_t.ndim)
    std = std.expand(x_t.shape[:1] + (1,) * (x_t.ndim - 1)) if std.numel() == 1 else std
    return {
        "eps": eps,
        "x0": x0,
        "x0_clipped": x0_clipped,
        "v": v,
        "mean": mean,
        "std": std,
        "x_prev": mean + std * noise,
    }


# --- runs --------------------------------------------------------------------------------------


def _compute_dtype(device: torch.device) -> torch.dtype:
    """float64 for the step maths on CPU; float32 on accelerators (MPS has no float64)."""
    return torch.float64 if device.type == "cpu" else torch.float32


def _run(
    denoiser: Denoiser,
    settings: SamplerSettings,
    x_start: torch.Tensor,
    first_index: int,
    progress: Callable[[int, int], None] | None,
) -> Iterator[Step]:
    """Yield steps first_index .. n−1 from x_start (the x_t entering step `first_index`)."""
    device = denoiser.device
    dtype = _compute_dtype(device)
    jumps = settings.schedule.respace(settings.timesteps)
    shape = (settings.batch_size, *denoiser.sample_shape)
    n = len(settings.timesteps)
    x_t = x_start.to(device=device, dtype=dtype)
    for k in range(first_index, n):
        t = settings.timesteps[k]
        output = denoiser.predict(x_t.to(denoiser.dtype), t)
        model_output = output.prediction.to(dtype)
        variance_values = None if output.variance_values is None else output.variance_values.to(dtype)
        noise = step_noise(settings.seed, k, shape).to(device=device, dtype=dtype)
        parts = reverse_step(settings, jumps, k, x_t, model_output, denoiser.prediction, noise, variance_values)
        cpu = {name: value.to("cpu", torch.float32) for name, value in parts.items()}
        step = Step(
            index=k,
            timestep=t,
            prev_timestep=settings.timesteps[k + 1] if k + 1 < n else -1,
            x_t=x_t.to("cpu", torch.float32),
            model_output=model_output.to("cpu", torch.float32),
            noise=noise.to("cpu", torch.float32),
            **cpu,
        )
        if progress is not None:
            progress(k + 1, n)
        yield step
        x_t = cpu["x_prev"].to(device=device, dtype=dtype)  # carry exactly what was recorded (float32)


def iterate(denoiser: Denoiser, *, progress: Callable[[int, int], None] | None = None, **options) -> Iterator[Step]:
    """Yield each `Step` as it is computed (stop any time). Options as for `sample`."""
    settings = resolve_settings(denoiser, **options)
    shape = (settings.batch_size, *denoiser.sample_shape)
    return _run(denoiser, settings, initial_noise(settings.seed, shape), 0, progress)


def sample(
    denoiser: Denoiser,
    *,
    sampler: str | SamplerKind = "ddpm",
    num_inference_steps: int | None = None,
    eta: float = 0.0,
    variance: str | VarianceType | None = None,
    batch_size: int = 1,
    seed: int = 0,
    clip_sample: bool | None = None,
    schedule: Schedule | None = None,
    spacing: str | TimestepSpacing = "leading",
    clip_range: float = 1.0,
    timesteps: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Trajectory:
    """Run the reverse process and record every step. None means the checkpoint's own setting.

    x_T and the noise of step k depend on (seed, k) only: the same seed gives the same x_T and per-step
    noise for every model. num_inference_steps ∈ [1, T] (default T); eta ∈ [0, 1] (DDIM only).
    """
    settings = resolve_settings(
        denoiser,
        sampler=sampler,
        num_inference_steps=num_inference_steps,
        eta=eta,
        variance=variance,
        batch_size=batch_size,
        seed=seed,
        clip_sample=clip_sample,
        schedule=schedule,
        spacing=spacing,
        clip_range=clip_range,
        timesteps=timesteps,
    )
    shape = (settings.batch_size, *denoiser.sample_shape)
    steps = tuple(_run(denoiser, settings, initial_noise(settings.seed, shape), 0, progress))
    return Trajectory(denoiser.name, denoiser.prediction, settings, steps)


def branch_timesteps(start: int, count: int) -> tuple[int, ...]:
    """`count` evenly spaced timesteps from `start` down to 0 (descending, distinct)."""
    _check_number("remaining steps", count, 1, start + 1, integer=True)
    return tuple(int(t) for t in np.unique(np.round(np.linspace(0, start, int(count))).astype(np.int64))[::-1])


def branch(
    trajectory: Trajectory,
    denoiser: Denoiser,
    from_index: int,
    *,
    remaining_steps: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    **changes,
) -> Trajectory:
    """Rewind to step `from_index` and rerun the rest with changed settings on the same noise stream.

    Steps before `from_index` are kept as recorded; step k of the branch still uses the noise of (seed, k).
    `changes` may set sampler, eta, variance, clip_sample, clip_range or schedule; `remaining_steps` resamples
    the timesteps from t_k down to 0 on an even grid.
    """
    _check_number("from_index", from_index, 0, len(trajectory) - 1, integer=True)
    allowed = {"sampler", "eta", "variance", "clip_sample", "clip_range", "schedule"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"branch can change only {', '.join(sorted(allowed))}; got {', '.join(sorted(unknown))}")
    old = trajectory.settings
    start = trajectory.steps[from_index].timestep
    tail = old.timesteps[from_index:] if remaining_steps is None else branch_timesteps(start, remaining_steps)
    settings = resolve_settings(
        denoiser,
        sampler=changes.get("sampler", old.sampler),
        eta=changes.get("eta", old.eta),
        variance=changes.get("variance", old.variance),
        batch_size=old.batch_size,
        seed=old.seed,
        clip_sample=changes.get("clip_sample", old.clip_sample),
        schedule=changes.get("schedule", old.schedule),
        clip_range=changes.get("clip_range", old.clip_range),
        timesteps=old.timesteps[:from_index] + tuple(tail),
    )
    settings = replace(settings, spacing=old.spacing)
    x_start = trajectory.steps[from_index].x_t
    new = tuple(_run(denoiser, settings, x_start, from_index, progress))
    return Trajectory(denoiser.name, denoiser.prediction, settings, trajectory.steps[:from_index] + new)
