"""Reverse sampling that records every step: DDPM ancestral and DDIM, on any grid of timesteps.

Notation (Ho et al. 2020, Algorithm 2 and eq. 7; Song et al. 2021, "DDIM", eq. 12):

    code name        symbol                  meaning
    timesteps[k]     t_k                     0-based timestep visited at step k (descending)
    prev_timestep    s = t_{k+1}             the timestep the step lands on; −1 means x_0 (ᾱ = 1)
    x_t              x_t                     the state entering step k, [B, *shape]
    model_output     f_θ(x_t, t)             in the denoiser's own parameterization
    eps, x0, v, u    ε̂, x̂₀, v̂, û            the same prediction in all four spaces (fp32 or better; û = ε̂ − x̂₀ is the
                                             flow velocity at the σ of equal SNR, `explorer.diffusion.flow`)
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
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import torch

from explorer.diffusion.conditioning import apply_conditioning
from explorer.diffusion.denoiser import Denoiser, DenoiserOutput, as_denoiser
from explorer.diffusion.indexing import frame_of, paper_t
from explorer.diffusion.noise import initial_noise, step_noise
from explorer.diffusion.parameterization import Prediction, convert
from explorer.diffusion.posterior import q_posterior, reverse_log_variance
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.settings import END_OF_RUN, SamplerKind, SamplerSettings, resolve_settings
from explorer.diffusion.shipped import branch_scheduler_settings, is_flow_scheduler, iterate_scheduler
from explorer.diffusion.shipped_flow import iterate_flow_scheduler
from explorer.diffusion.tensors import append_dims
from explorer.diffusion.trajectory import Step, Trajectory
from explorer.validation import check_int

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
    u = convert(model_output, prediction, Prediction.FLOW, x_t, a_t)
    if not (torch.isfinite(x0).all() and torch.isfinite(eps).all()):
        t = paper_t(settings.timesteps[index])
        where = f"step {frame_of(index)} of {n} (t = {t})"
        raise FloatingPointError(f"the model's output is not finite (NaN or inf) at {where}")
    x0_clipped = x0.clamp(-settings.clip_range, settings.clip_range) if settings.clip_sample else x0

    if settings.sampler is SamplerKind.DDPM:
        mean = q_posterior(jumps, x0_clipped, x_t, j).mean
        log_var = reverse_log_variance(jumps, j, settings.variance, x_t, variance_values)
        std = (0.5 * log_var).exp() if not final else torch.zeros_like(log_var)
    else:
        a_prev = float(jumps.alphas_cumprod_prev[j])
        variance = float(jumps.posterior_variance[j])  # β̃ of the jump t → s
        lands_on_data = not final or settings.final_timestep == END_OF_RUN
        if not lands_on_data:  # set_alpha_to_one false: the last step lands on ᾱ at index 0, as in diffusers
            a_prev = float(settings.schedule.alphas_cumprod[settings.final_timestep])
            variance = (1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev)
        sigma = settings.eta * math.sqrt(max(variance, 0.0))
        direction = math.sqrt(max(1.0 - a_prev - sigma**2, 0.0))
        mean = math.sqrt(a_prev) * x0_clipped + direction * eps
        sigma = 0.0 if final and lands_on_data else sigma
        std = append_dims(torch.tensor(sigma, dtype=x_t.dtype, device=x_t.device), x_t.ndim)
    std = std.expand(x_t.shape[:1] + (1,) * (x_t.ndim - 1)) if std.numel() == 1 else std
    return {
        "eps": eps,
        "x0": x0,
        "x0_clipped": x0_clipped,
        "v": v,
        "u": u,
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
            prev_timestep=settings.prev_timesteps[k],
            x_t=x_t.to("cpu", torch.float32),
            model_output=model_output.to("cpu", torch.float32),
            noise=noise.to("cpu", torch.float32),
            **cpu,
            **guidance_record(output),
        )
        if progress is not None:
            progress(frame_of(k), n)
        yield step
        x_t = cpu["x_prev"].to(device=device, dtype=dtype)  # carry exactly what was recorded (float32)


def guidance_record(output: DenoiserOutput) -> dict[str, torch.Tensor | None]:
    """A conditional model's conditional and unconditional predictions and learned σ values, as CPU float32."""
    parts = {"conditional": output.conditional, "unconditional": output.unconditional}
    parts["variance_values"] = output.variance_values
    return {name: None if value is None else value.to("cpu", torch.float32) for name, value in parts.items()}


def _settings_for(denoiser: Denoiser, settings: SamplerSettings | None, options: dict) -> SamplerSettings:
    if settings is None:
        return resolve_settings(denoiser, **options)
    if options:
        raise ValueError(f"give either settings or keyword options, not both; got settings and {', '.join(options)}")
    if not isinstance(settings, SamplerSettings):
        raise TypeError(f"settings must be a SamplerSettings (from resolve_settings); got {type(settings).__name__}")
    return settings


def iterate(
    denoiser: Denoiser,
    settings: SamplerSettings | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> Iterator[Step]:
    """Yield each `Step` as it is computed (stop any time): with checked `settings`, or with the keyword options
    of `resolve_settings` and the conditioning keywords (the same as `sample`'s)."""
    denoiser = as_denoiser(apply_conditioning(denoiser, options))
    settings = _settings_for(denoiser, settings, options)
    if settings.sampler is SamplerKind.SCHEDULER:  # the checkpoint's own scheduler (shipped.py, shipped_flow.py)
        if is_flow_scheduler(denoiser):
            return iterate_flow_scheduler(denoiser, settings, progress=progress)
        return iterate_scheduler(denoiser, settings, progress=progress)
    shape = (settings.batch_size, *denoiser.sample_shape)
    return _run(denoiser, settings, initial_noise(settings.seed, shape), 0, progress)


def sample(
    denoiser: Denoiser,
    settings: SamplerSettings | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> Trajectory:
    """Run the reverse process and record every step.

    Options are `resolve_settings`' keywords (sampler, num_inference_steps, eta, variance, batch_size, seed,
    clip_sample, schedule, spacing, clip_range, timesteps); None means the checkpoint's own setting. x_T and the
    noise of step k depend on (seed, k) only: the same seed gives the same x_T and noise for every model.
    A conditional model also takes prompt, negative_prompt, guidance_scale, guidance_rescale and class_label
    (`explorer.diffusion.conditioning`); its steps keep the conditional and unconditional predictions.
    """
    denoiser = as_denoiser(apply_conditioning(denoiser, options))
    settings = _settings_for(denoiser, settings, options)
    steps = tuple(iterate(denoiser, settings, progress=progress))
    return Trajectory(denoiser.name, denoiser.prediction, settings, steps, getattr(denoiser, "conditioning", None))


def branch_timesteps(start: int, count: int) -> tuple[int, ...]:
    """`count` evenly spaced timesteps from `start` down to 0 (descending, distinct)."""
    check_int("remaining steps", count, 1, start + 1)
    return tuple(int(t) for t in np.unique(np.round(np.linspace(0, start, int(count))).astype(np.int64))[::-1])


def branch_settings(
    settings: SamplerSettings,
    denoiser: Denoiser,
    from_index: int,
    *,
    remaining_steps: int | None = None,
    **changes,
) -> SamplerSettings:
    """The settings of a branch from step `from_index` of a run made with `settings`: the same seed, batch and
    steps before `from_index`; `changes` may set sampler, eta, variance, clip_sample, clip_range or schedule;
    `remaining_steps` resamples the timesteps from t_k down to 0 on an even grid."""
    check_int("from_index", from_index, 0, settings.num_inference_steps - 1)
    if SamplerKind.SCHEDULER in (settings.sampler, changes.get("sampler")):  # refused where not exact (shipped.py)
        return branch_scheduler_settings(settings, denoiser, from_index, remaining_steps=remaining_steps, **changes)
    allowed = {"sampler", "eta", "variance", "clip_sample", "clip_range", "schedule"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"branch can change only {', '.join(sorted(allowed))}; got {', '.join(sorted(unknown))}")
    start = settings.timesteps[from_index]
    tail = settings.timesteps[from_index:] if remaining_steps is None else branch_timesteps(start, remaining_steps)
    resolved = resolve_settings(
        denoiser,
        sampler=changes.get("sampler", settings.sampler),
        eta=changes.get("eta", settings.eta),
        variance=changes.get("variance", settings.variance),
        batch_size=settings.batch_size,
        seed=settings.seed,
        clip_sample=changes.get("clip_sample", settings.clip_sample),
        schedule=changes.get("schedule", settings.schedule),
        clip_range=changes.get("clip_range", settings.clip_range),
        timesteps=settings.timesteps[:from_index] + tuple(tail),
    )
    return replace(resolved, spacing=settings.spacing)


def iterate_branch(
    denoiser: Denoiser,
    settings: SamplerSettings,
    x_start: torch.Tensor,
    from_index: int,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Step]:
    """Yield steps from_index, from_index + 1, … of a run with `settings` (from `branch_settings`), starting from the
    recorded state x_start ([B, *sample_shape]) that entered step `from_index`; the noise of step k is (seed, k)'s."""
    denoiser = as_denoiser(denoiser)
    check_int("from_index", from_index, 0, settings.num_inference_steps - 1)
    if settings.sampler is SamplerKind.SCHEDULER:  # a fresh scheduler from the recorded x_t (shipped.py)
        if is_flow_scheduler(denoiser):
            return iterate_flow_scheduler(denoiser, settings, restart=(x_start, from_index), progress=progress)
        return iterate_scheduler(denoiser, settings, restart=(x_start, from_index), progress=progress)
    return _run(denoiser, settings, x_start, from_index, progress)


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
    `changes` and `remaining_steps` as for `branch_settings`.
    """
    if trajectory.conditioning is not None and callable(getattr(denoiser, "condition", None)):
        denoiser = denoiser.condition(trajectory.conditioning)  # the branch keeps the run's prompt or class
    denoiser = as_denoiser(denoiser)
    check_int("from_index", from_index, 0, len(trajectory) - 1)
    settings = branch_settings(trajectory.settings, denoiser, from_index, remaining_steps=remaining_steps, **changes)
    x_start = trajectory.steps[from_index].x_t
    new = tuple(iterate_branch(denoiser, settings, x_start, from_index, progress=progress))
    steps = trajectory.steps[:from_index] + new
    return Trajectory(denoiser.name, denoiser.prediction, settings, steps, trajectory.conditioning)
