"""The checkpoint's own flow-matching scheduler (`FlowMatchEulerDiscreteScheduler`: SD3, FLUX.1) run through its
`step()`, frame by frame, and recorded in the explorer's (variance-preserving) convention.

The scheduler is set as the family's pipeline sets it (`set_timesteps(n, **model.set_timesteps_options(n))`:
FLUX's σ = linspace(1, 1/n, n) and dynamic shift μ, SD3's static shift), and the model is bound to exactly the σ it
visits (`on_sigmas`), so the model's integer timestep k' is that σ's index in the bound schedule:

    code name      symbol          meaning (call k of n; `explorer.diffusion.flow` for the path)
    sigmas[k]      σ_k             scheduler.sigmas (n + 1 values, descending, the last 0): call k runs at σ_k and
                                   lands on σ_{k+1}
    timesteps[k]   k'              n − 1 − k: σ_k's index in the bound schedule (ascending σ); the network itself is
                                   called with σ_k·T, as in the pipeline (`families.sd3.flow_point`)
    sample         x_σ             the scheduler's state, on the flow path x_σ = (1 − σ) x₀ + σ ε
    c              c(σ)            √((1 − σ)² + σ²): x_t = x_σ / c(σ_k) is the VP point of equal SNR
    x_t            x_t             the VP state the explorer's model takes (it returns û, the flow velocity)
    a              ᾱ_k             (1 − σ_k)² / c(σ_k)²: ε̂, x̂₀, v̂ and û are the model output converted with it
    x_prev         x_s             step()'s prev_sample / c(σ_{k+1}); ᾱ_s = settings.alpha_of_landing[k]
    noise, std     z, σ_z          z = what the scheduler drew with `stochastic_sampling` from the generator of
                                   (seed, k); σ_z measured as in `shipped` (σ_{k+1}/c(σ_{k+1}) for that step), 0 for
                                   the deterministic Euler step x_{σ'} = x_σ + (σ' − σ) û
    mean           μ               x_prev − σ_z z

Euler keeps nothing between calls, so a run can branch from any frame with a fresh scheduler.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from explorer.diffusion.denoiser import Denoiser, as_denoiser
from explorer.diffusion.landings import END_OF_RUN, flow_landings
from explorer.diffusion.noise import generator_for, initial_noise, step_noise
from explorer.diffusion.parameterization import Prediction, convert
from explorer.diffusion.schedules import TimestepSpacing, current_scheduler_config
from explorer.diffusion.settings import MAX_SEED, SamplerKind, SamplerSettings, max_batch_size
from explorer.diffusion.shipped import (
    _PROBE_SEED,
    FLOW_SCHEDULER_SETTINGS,
    _guidance_record,
    _noise_scale,
    run_frames,
)
from explorer.diffusion.trajectory import Step
from explorer.diffusion.views import FOUR_VIEWS
from explorer.validation import check_float, check_int

_NOT_RUN = ("invert_sigmas",)  # Mochi's inverted σ: the path runs the other way


def _flow_config(denoiser: Denoiser) -> dict[str, Any]:
    config = current_scheduler_config(denoiser.scheduler_config)
    if denoiser.prediction is not Prediction.FLOW:
        raise ValueError(
            f"{config['_class_name']} steps with a flow velocity; {denoiser.name} predicts {denoiser.prediction.value}"
        )
    for key in _NOT_RUN:
        if config.get(key):
            raise ValueError(f"{config['_class_name']} with {key} is not one the explorer runs")
    if not callable(getattr(denoiser, "on_sigmas", None)):
        raise ValueError(
            f"sampler 'scheduler' binds a flow model to its scheduler's σ grid (on_sigmas), which {denoiser.name} "
            "does not have; use sampler 'ddim' on its own schedule"
        )
    return config


def build_flow_scheduler(denoiser: Denoiser, num_inference_steps: int, device: torch.device | str = "cpu") -> Any:
    """A fresh `FlowMatchEulerDiscreteScheduler` of the denoiser's config with its timesteps set as its pipeline
    sets them (diffusers imported here, lazily)."""
    import diffusers

    config = _flow_config(denoiser)
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(config)
    options_of = getattr(denoiser, "set_timesteps_options", None)
    options = options_of(num_inference_steps) if callable(options_of) else {}
    try:
        scheduler.set_timesteps(num_inference_steps, device=device, **options)
    except ValueError as error:
        raise ValueError(f"FlowMatchEulerDiscreteScheduler cannot run {num_inference_steps} steps: {error}") from error
    return scheduler


def _bound(denoiser: Denoiser, scheduler: Any) -> Denoiser:
    """The model on exactly the σ the scheduler visits (ascending, without the terminal 0)."""
    return denoiser.on_sigmas(scheduler.sigmas[:-1].detach().cpu().double().tolist())


def _calls(count: int) -> tuple[int, ...]:
    """Call k's timestep in the bound schedule: its σ's index counted from the smallest σ, n − 1 − k."""
    return tuple(reversed(range(count)))


def flow_scheduler_settings(
    denoiser: Denoiser,
    *,
    num_inference_steps: int | None = None,
    eta: float = 0.0,
    batch_size: int = 1,
    seed: int = 0,
    spacing: str | TimestepSpacing | None = None,
) -> SamplerSettings:
    """`shipped.scheduler_settings` for a flow-matching checkpoint (which refused the options the scheduler decides
    itself): n ∈ [2, T] steps (default: the model's `default_steps`). The schedule is the model's bound to the
    scheduler's σ, so settings.timesteps index it (n − 1 … 0) and settings.alpha_of_call are the ᾱ of equal SNR."""
    denoiser = as_denoiser(denoiser)
    if spacing is not None:
        raise ValueError("spacing: FlowMatchEulerDiscreteScheduler has no timestep_spacing to choose; leave it unset")
    if check_float("eta", eta, 0.0, 1.0):
        raise ValueError("eta applies to the DDIM scheduler only; FlowMatchEulerDiscreteScheduler takes no eta")
    total = int(_flow_config(denoiser).get("num_train_timesteps", 1000))
    steps = num_inference_steps if num_inference_steps is not None else denoiser.default_steps or total
    steps = check_int("num_inference_steps", steps, 2, total)  # the bound schedule needs two σ at least
    scheduler = build_flow_scheduler(denoiser, steps)
    calls = _calls(steps)
    return SamplerSettings(
        sampler=SamplerKind.SCHEDULER,
        timesteps=calls,
        eta=0.0,
        variance=denoiser.variance_type,
        clip_sample=False,
        clip_range=1.0,
        seed=check_int("seed", seed, 0, MAX_SEED),
        batch_size=check_int("batch_size", batch_size, 1, max_batch_size(denoiser.sample_shape)),
        schedule=_bound(denoiser, scheduler).schedule,
        spacing=TimestepSpacing.TRAILING,  # starts at σ = 1, as its pipelines do
        final_timestep=END_OF_RUN,
        scheduler_steps=steps,
        landings=flow_landings(scheduler, calls),
    )


# --- runs ------------------------------------------------------------------------------------------------


def _scale(sigma: torch.Tensor) -> float:
    """c(σ) = √((1 − σ)² + σ²), in float64 from the scheduler's float32 σ."""
    sig = float(sigma)
    return math.sqrt((1 - sig) ** 2 + sig**2)


def _call(denoiser: Denoiser, settings: SamplerSettings, scheduler: Any, sample: torch.Tensor, k: int):
    """Model call k: the model on x_σ / c(σ_k), one scheduler step; returns (the frame, the next x_σ)."""
    sigma, sigma_next = scheduler.sigmas[k], scheduler.sigmas[k + 1]
    x_t = sample / _scale(sigma)  # the VP point of equal SNR (float32: MPS has no float64)
    t = settings.timesteps[k]
    output = denoiser.predict(x_t.to(denoiser.dtype), t)
    model_output = output.prediction.to(sample.dtype)
    shape = tuple(sample.shape)
    noise = step_noise(settings.seed, k, shape)
    stochastic = bool(scheduler.config.get("stochastic_sampling", False))
    probe = copy.deepcopy(scheduler) if stochastic else None
    timestep = scheduler.timesteps[k]
    generator = generator_for(settings.seed, k + 1)  # = the stream of step_noise(seed, k)
    prev_sample = scheduler.step(model_output, timestep, sample, generator=generator).prev_sample
    x_prev = prev_sample.float() / _scale(sigma_next)
    std = torch.zeros((shape[0],) + (1,) * (len(shape) - 1))
    if probe is not None:  # σ_z measured: another noise z′ through a copy of the scheduler
        generator = torch.Generator().manual_seed(_PROBE_SEED + k)
        other = torch.randn(shape, generator=torch.Generator().manual_seed(_PROBE_SEED + k))
        probe_prev = probe.step(model_output, timestep, sample, generator=generator).prev_sample
        probe_prev = probe_prev.float() / _scale(sigma_next)
        std = _noise_scale(x_prev.cpu(), probe_prev.cpu(), noise, other, "FlowMatchEulerDiscreteScheduler")
    a = settings.alpha_of_call[k]
    x64, out64 = x_t.double().cpu(), model_output.double().cpu()
    views = {view.name: convert(out64, Prediction.FLOW, view.prediction, x64, a).float() for view in FOUR_VIEWS}
    x_prev_cpu = x_prev.detach().to("cpu", torch.float32)
    step = Step(
        index=k,
        timestep=t,
        prev_timestep=settings.prev_timesteps[k],
        x_t=x_t.detach().to("cpu", torch.float32),
        model_output=model_output.detach().to("cpu", torch.float32),
        x0_clipped=views["x0"],  # the Euler step clips nothing
        mean=x_prev_cpu - std * noise,
        std=std,
        noise=noise,
        x_prev=x_prev_cpu,
        **views,
        **_guidance_record(output),
    )
    return step, prev_sample


def iterate_flow_scheduler(
    denoiser: Denoiser,
    settings: SamplerSettings,
    *,
    restart: tuple[torch.Tensor, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Step]:
    """Yield each call of the checkpoint's flow scheduler as a `Step` (settings from `flow_scheduler_settings`);
    `restart=(x_t, k)` continues from the recorded VP state x_t entering call k with a fresh scheduler."""
    denoiser = as_denoiser(denoiser)
    if settings.sampler is not SamplerKind.SCHEDULER:
        raise ValueError(
            f"iterate_flow_scheduler needs settings of sampler 'scheduler'; got {settings.sampler.value!r}"
        )
    scheduler = build_flow_scheduler(denoiser, settings.scheduler_steps, device=denoiser.device)
    bound = _bound(denoiser, scheduler)
    made_for = settings.timesteps == _calls(settings.scheduler_steps)
    if not made_for or tuple(bound.schedule.alphas_cumprod) != tuple(settings.schedule.alphas_cumprod):
        raise ValueError(f"these settings were not made for {denoiser.name}'s FlowMatchEulerDiscreteScheduler")
    shape = (settings.batch_size, *denoiser.sample_shape)
    if restart is None:
        first, sample = 0, initial_noise(settings.seed, shape)  # x_σ = ε, as its pipelines draw it (σ_0 = 1)
    else:
        x_start, first = restart
        check_int("from_index", first, 0, settings.num_inference_steps - 1)
        scheduler.set_begin_index(first)
        sample = x_start.float() * _scale(scheduler.sigmas[first])
    state = {"sample": sample.to(denoiser.device)}

    def call(k: int) -> Step:
        step, state["sample"] = _call(bound, settings, scheduler, state["sample"], k)
        return step

    return run_frames(call, first, settings.num_inference_steps, progress)


FLOW_SCHEDULER_SETTINGS.append(flow_scheduler_settings)  # shipped.scheduler_settings hands flow models to it
