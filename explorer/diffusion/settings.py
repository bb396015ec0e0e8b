"""A run's settings, checked once: `resolve_settings` turns keyword options into a frozen `SamplerSettings`.

Everything that determines a run besides the denoiser lives in `SamplerSettings`; the sampler, branching, the
UI and the stored runs all carry that one object, so no option is parsed twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from explorer.diffusion.denoiser import Denoiser, as_denoiser
from explorer.diffusion.landings import END_OF_RUN, Landings, visited_landings
from explorer.diffusion.parameterization import Prediction
from explorer.diffusion.posterior import VarianceType
from explorer.diffusion.schedules import FLOW_SCHEDULERS, Schedule, TimestepSpacing, inference_timesteps
from explorer.validation import Mode, check_float, check_int

MAX_BATCH_SIZE = 4096
MAX_BATCH_ELEMENTS = 2**22  # numbers in one [B, *shape] tensor: 16 MiB in float32
MAX_SEED = 2**63 - 1
# shipped.scheduler_settings, registered there on import (explorer imports it): settings cannot import shipped,
# which builds SamplerSettings.
OWN_SCHEDULER_SETTINGS: list[Callable[..., SamplerSettings]] = []
# END_OF_RUN (from explorer.diffusion.landings): prev_timestep of a final step that lands on x₀ itself (ᾱ = 1)


class SamplerKind(Mode, field="sampler"):
    """The reverse update: DDPM ancestral sampling, or DDIM (η = 0 deterministic; η = 1 matches DDPM's fixed_small
    step only without clipping: with clip_sample, DDIM keeps the unclipped ε̂ in its direction term)."""

    DDPM = "ddpm"
    DDIM = "ddim"
    SCHEDULER = "scheduler"  # the checkpoint's own diffusers scheduler, through its step() (explorer.diffusion.shipped)


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
    # Where the last step lands: END_OF_RUN (ᾱ = 1, the data), or timestep 0 (ᾱ at index 0) for DDIM when the
    # checkpoint's scheduler sets `set_alpha_to_one: false`, as diffusers' DDIMScheduler does (SD configs).
    final_timestep: int = END_OF_RUN
    scheduler_steps: int = 0  # sampler 'scheduler': the count given to set_timesteps (Heun: 2 model calls per step)
    # sampler 'scheduler': where each call lands, read from the scheduler (explorer.diffusion.landings); None for
    # the explorer's own samplers, whose step k lands on the next visited timestep (or final_timestep)
    landings: Landings | None = field(default=None, repr=False)

    @property
    def num_inference_steps(self) -> int:
        return len(self.timesteps)

    @cached_property
    def frames(self) -> Landings:
        """Per frame k: the step's start, landing, ᾱ of the call and of the landing, and its role."""
        if self.landings is not None:
            return self.landings
        return visited_landings(self.timesteps, self.final_timestep, self.schedule.alphas_cumprod)

    @property
    def prev_timesteps(self) -> tuple[int, ...]:
        """The 0-based timestep each frame's x_prev lies at (END_OF_RUN: the data)."""
        return self.frames.prev

    @property
    def step_starts(self) -> tuple[int, ...]:
        """The 0-based timestep of the state each frame's x_prev is computed from (an earlier call's for Heun's
        2nd call, PNDM's Runge–Kutta calls, …; else the frame's own timestep)."""
        return self.frames.starts

    @property
    def alpha_of_call(self) -> tuple[float, ...]:
        """ᾱ each frame's views (ε̂, x̂₀, v̂) are converted with: the scheduler's σ where it keeps one, else ᾱ[t]."""
        return self.frames.alpha_call

    @property
    def alpha_of_landing(self) -> tuple[float, ...]:
        """ᾱ of each frame's x_prev (1 at the data)."""
        return self.frames.alpha_landing

    @property
    def frame_roles(self) -> tuple[str, ...]:
        """Why each frame exists where a step takes several model calls ("" for an ordinary step)."""
        return self.frames.roles


def max_batch_size(sample_shape: tuple[int, ...]) -> int:
    """The largest batch the sampler takes for samples of this shape (MAX_BATCH_ELEMENTS numbers per tensor)."""
    return max(1, min(MAX_BATCH_SIZE, MAX_BATCH_ELEMENTS // math.prod(sample_shape)))


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
    spacing: str | TimestepSpacing | None = None,
    clip_range: float = 1.0,
    timesteps: Sequence[int] | None = None,
) -> SamplerSettings:
    """The one check of a run's options: each None becomes the checkpoint's own setting.

    sampler: ddpm, ddim or scheduler (the checkpoint's own: `shipped.scheduler_settings`); num_inference_steps ∈
    [1, T] (default: the model's `default_steps`, else T), visited
    with `spacing` (default: the checkpoint's `timestep_spacing`, else trailing for a flow-matching scheduler, which
    starts at σ = 1 as its pipelines do, else leading; leading adds the checkpoint's
    `steps_offset`, as diffusers does), or explicit descending 0-based `timesteps`; eta ∈ [0, 1] (DDIM only);
    variance: fixed_small, fixed_large or learned_range; clip_sample and clip_range: clip x̂₀ to [−r, r];
    schedule: follow another schedule with the model's T; batch_size and seed.
    """
    denoiser = as_denoiser(denoiser)
    kind = SamplerKind.parse(sampler)
    if kind is SamplerKind.SCHEDULER:  # the checkpoint's own scheduler decides its timesteps (shipped.py)
        scheduler_settings = OWN_SCHEDULER_SETTINGS[0]
        fixed = {"variance": variance, "clip_sample": clip_sample, "schedule": schedule, "timesteps": timesteps}
        fixed["clip_range"] = None if clip_range == 1.0 else clip_range
        options = {"num_inference_steps": num_inference_steps, "eta": eta, "batch_size": batch_size, "seed": seed}
        return scheduler_settings(denoiser, spacing=spacing, fixed=fixed, **options)
    own = denoiser.scheduler_config
    if spacing is None:  # a flow scheduler has no timestep_spacing: its pipelines start at σ = 1, as trailing does
        flow = own.get("_class_name") in FLOW_SCHEDULERS
        spacing = own.get("timestep_spacing") or ("trailing" if flow else "leading")
    spacing = TimestepSpacing.parse(spacing)
    offset = int(own.get("steps_offset") or 0) if spacing is TimestepSpacing.LEADING else 0
    schedule = denoiser.schedule if schedule is None else schedule
    total = schedule.num_train_timesteps
    if total != denoiser.schedule.num_train_timesteps:
        raise ValueError(
            f"schedule must have the model's T = {denoiser.schedule.num_train_timesteps} steps; got T = {total}"
        )
    if timesteps is None:
        steps = num_inference_steps if num_inference_steps is not None else denoiser.default_steps or total
        visited = inference_timesteps(total, check_int("num_inference_steps", steps, 1, total), spacing, offset)
    else:
        visited = np.asarray(timesteps, dtype=np.int64)
        if visited.ndim != 1 or visited.size == 0 or np.any(np.diff(visited) >= 0):
            raise ValueError("timesteps must be a non-empty, strictly descending sequence")
        if visited[-1] < 0 or visited[0] > total - 1:
            raise ValueError(f"timesteps must lie in [0, {total - 1}]")
    eta = check_float("eta", eta, 0.0, 1.0)
    batch_size = check_int("batch_size", batch_size, 1, max_batch_size(denoiser.sample_shape))
    seed = check_int("seed", seed, 0, MAX_SEED)
    clip_range = check_float("clip_range", clip_range, 1e-3, 1e3)
    variance = denoiser.variance_type if variance is None else VarianceType.parse(variance)
    if variance is VarianceType.LEARNED_RANGE and not denoiser.learned_variance:
        raise ValueError(f"variance 'learned_range' needs a learned-variance model; {denoiser.name} is not one")
    if denoiser.prediction is Prediction.EPSILON and schedule.alphas_cumprod[visited[0]] == 0.0:
        raise ValueError(
            "x̂₀ is undefined at t = T for an ε-prediction model when ᾱ_T = 0 (zero terminal SNR, or ᾱ_T below "
            "float64's range): start below "
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
        final_timestep=final_timestep_of(kind, own),
    )


def final_timestep_of(sampler: SamplerKind, scheduler_config: Mapping[str, Any]) -> int:
    """Where a run's last step lands: timestep 0 (ᾱ at index 0) for DDIM when the checkpoint's scheduler config
    says `set_alpha_to_one: false` (diffusers' DDIMScheduler then uses ᾱ_0 as the last "previous" ᾱ); else
    END_OF_RUN (ᾱ = 1). diffusers' DDPMScheduler always lands on ᾱ = 1."""
    if sampler is SamplerKind.DDIM and scheduler_config.get("set_alpha_to_one", True) is False:
        return 0
    return END_OF_RUN
