"""The checkpoint's own diffusers scheduler (PNDM, Euler, DPM-Solver, …) run through its `step()`, frame by frame.

A diffusers scheduler keeps its own state `sample` and its own grid of timesteps; the explorer calls it as a
pipeline does (`set_timesteps`, `scale_model_input`, the model, `step`) and records each model call as a `Step`
in the explorer's (variance-preserving) convention:

    code name     symbol            meaning
    sample        s_k               the scheduler's state; σ-space schedulers (Euler, Euler ancestral, Heun, LMS)
                                    keep s = x_t·√(σ²+1), the others keep s = x_t
    x_t           x_t               scale_model_input(s_k, t_k): the VP state, which is the model's input
    σ_k           σ                 the scheduler's noise level at call k, σ² = (1−ᾱ)/ᾱ (where it keeps σ)
    a             ᾱ                 settings.alpha_of_call[k]: 1/(1+σ_k²) where the scheduler keeps σ (its own,
                                    Karras or not), else the scheduler's ᾱ[t_k]: ε̂, x̂₀, v̂ (and a guided run's
                                    x̂₀ of f_c and f_u) are the model output converted with it
    x0_clipped    x̂₀ the step uses  the scheduler's pred_original_sample where it returns one, else x̂₀
    x_prev        x_s               step()'s prev_sample, in the VP convention (÷√(σ_{k+1}²+1) for σ-space
                                    schedulers, computed as scale_model_input does): the next call's x_t exactly;
                                    s = settings.prev_timesteps[k], ᾱ_s = settings.alpha_of_landing[k]
                                    (explorer.diffusion.landings: DDIM and PNDM land on t − T//n)
    noise, std    z, σ_z            z = what the scheduler drew from the generator seeded from the explorer's
                                    (seed, k) (= `noise.step_noise(seed, k)`); σ_z measured (below); 0 if it drew none
    mean          μ                 x_prev − σ_z z

σ_z is measured, not re-derived per class: step() is also run on a copy of the scheduler with another generator
z′, and since prev_sample is affine in the noise, σ_z = ⟨Δx, Δz⟩/⟨Δz, Δz⟩ per sample; the residual is checked, so a
scheduler that drew anything but z is an error, never a silent record. Heun calls the model twice per step: each
call is a frame (its 2nd-order frame's x_prev is the finished Heun step, computed from the state entering the
1st-order frame). x_T = `noise.initial_noise(seed)` × init_noise_sigma, as diffusers' pipelines draw it.

Flow-matching checkpoints (FlowMatchEulerDiscreteScheduler: SD3, FLUX.1) run through `shipped_flow`, which
`scheduler_settings` hands them to.

Branching continues the same scheduler from a frame only where its step depends on nothing but that frame's
state: DDPM, DDIM, Euler, Euler ancestral and Heun's 1st-order frames. Multistep schedulers keep earlier model
outputs inside themselves, which a rewound frame does not have, so a branch from them is refused.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from explorer.diffusion.clipping import clipping_of
from explorer.diffusion.denoiser import Denoiser, DenoiserOutput, as_denoiser
from explorer.diffusion.indexing import frame_of
from explorer.diffusion.landings import scheduler_landings
from explorer.diffusion.noise import generator_for, initial_noise, step_noise
from explorer.diffusion.parameterization import Prediction, convert
from explorer.diffusion.schedules import FLOW_SCHEDULERS, TimestepSpacing, current_scheduler_config
from explorer.diffusion.settings import (
    END_OF_RUN,
    MAX_SEED,
    OWN_SCHEDULER_SETTINGS,
    SamplerKind,
    SamplerSettings,
    max_batch_size,
)
from explorer.diffusion.tensors import append_dims
from explorer.diffusion.trajectory import Step
from explorer.diffusion.views import FOUR_VIEWS
from explorer.validation import check_float, check_int

# shipped_flow.flow_scheduler_settings, registered there on import (explorer imports it): shipped_flow builds on
# this module, so this module cannot import it.
FLOW_SCHEDULER_SETTINGS: list[Callable[..., SamplerSettings]] = []
_PROBE_SEED = 0x5EED_CAFE  # another noise stream for measuring σ_z (any stream other than the run's own)
_NOISE_RESIDUAL = 1e-4  # relative: prev_sample must be affine in the noise the explorer gave the scheduler


@dataclass(frozen=True)
class ShippedScheduler:
    """What the explorer knows of one allowlisted diffusers scheduler class."""

    class_name: str
    label: str
    sigma_space: bool  # its sample is x_t·√(σ²+1); scale_model_input divides by √(σ²+1)
    multistep: bool  # step() uses model outputs kept from earlier calls
    calls_per_step: int = 1  # Heun: a 1st-order call, then a 2nd-order one

    def branchable_at(self, index: int) -> bool:
        """True when a run can continue from frame `index` with a fresh scheduler (nothing kept inside)."""
        return not self.multistep and index % self.calls_per_step == 0


SCHEDULERS: dict[str, ShippedScheduler] = {
    kind.class_name: kind
    for kind in (
        ShippedScheduler("DDPMScheduler", "DDPM", sigma_space=False, multistep=False),
        ShippedScheduler("DDIMScheduler", "DDIM", sigma_space=False, multistep=False),
        ShippedScheduler("PNDMScheduler", "PNDM", sigma_space=False, multistep=True),
        ShippedScheduler("EulerDiscreteScheduler", "Euler", sigma_space=True, multistep=False),
        ShippedScheduler("EulerAncestralDiscreteScheduler", "Euler ancestral", sigma_space=True, multistep=False),
        ShippedScheduler("HeunDiscreteScheduler", "Heun", sigma_space=True, multistep=False, calls_per_step=2),
        ShippedScheduler("LMSDiscreteScheduler", "LMS", sigma_space=True, multistep=True),
        ShippedScheduler("DPMSolverMultistepScheduler", "DPM-Solver multistep", sigma_space=False, multistep=True),
        ShippedScheduler("DPMSolverSinglestepScheduler", "DPM-Solver singlestep", sigma_space=False, multistep=True),
        ShippedScheduler("UniPCMultistepScheduler", "UniPC", sigma_space=False, multistep=True),
        ShippedScheduler("DEISMultistepScheduler", "DEIS", sigma_space=False, multistep=True),
    )
}
_NOT_VP = ("use_flow_sigmas", "use_dynamic_shifting")  # flow-matching σ: not a DDPM β schedule


def shipped_config(denoiser: Denoiser) -> dict[str, Any]:
    """The denoiser's scheduler config in today's form (`current_scheduler_config`), checked against the allowlist."""
    raw = getattr(denoiser, "scheduler_config", None)
    if not raw:
        raise ValueError(
            f"sampler 'scheduler' runs the checkpoint's own scheduler, and {denoiser.name} has no scheduler config"
        )
    config = current_scheduler_config(raw)
    kind = shipped_kind(config)
    if Prediction.parse(config.get("prediction_type", "epsilon")) is not denoiser.prediction:
        raise ValueError(
            f"{kind.class_name}'s prediction_type {config.get('prediction_type', 'epsilon')!r} is not the model's "
            f"{denoiser.prediction.value!r}"
        )
    flow = [key for key in _NOT_VP if config.get(key)]
    if flow:
        raise ValueError(f"{kind.class_name} with {flow[0]} follows flow-matching σ, not the model's β schedule")
    if kind.class_name == "DDPMScheduler" and str(config.get("variance_type", "")).startswith("learned"):
        raise ValueError(
            "DDPMScheduler with a learned variance: use sampler 'ddpm', which records the learned σ exactly"
        )
    return config


def is_flow_scheduler(denoiser: Denoiser) -> bool:
    """True when the denoiser's own scheduler is a flow-matching one (`shipped_flow` runs it)."""
    config = getattr(denoiser, "scheduler_config", None) or {}
    return current_scheduler_config(config).get("_class_name") in FLOW_SCHEDULERS


def shipped_kind(config: Mapping[str, Any]) -> ShippedScheduler:
    """The allowlisted scheduler a (current-form) config names; ValueError naming the allowlist otherwise."""
    name = config.get("_class_name")
    if name not in SCHEDULERS:
        allowed = ", ".join(SCHEDULERS)
        raise ValueError(f"the checkpoint's scheduler {name!r} is not one the explorer runs; it runs {allowed}")
    return SCHEDULERS[name]


def build_scheduler(config: Mapping[str, Any], num_inference_steps: int, device: torch.device | str = "cpu") -> Any:
    """A fresh diffusers scheduler from a checked config with its timesteps set (diffusers imported here, lazily)."""
    import diffusers

    kind = shipped_kind(config)
    scheduler = getattr(diffusers, kind.class_name).from_config(dict(config))
    try:
        scheduler.set_timesteps(num_inference_steps, device=device)
    except (ValueError, ZeroDivisionError, IndexError) as error:
        raise ValueError(f"{kind.class_name} cannot run {num_inference_steps} steps: {error}") from error
    return scheduler


_OFF_GRID_SIGMAS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")  # σ between the grid's


def _timesteps_of(scheduler: Any, kind: ShippedScheduler) -> tuple[int, ...]:
    values = scheduler.timesteps.detach().cpu().double()
    if not torch.equal(values, values.round()):
        fractional = next(float(v) for v in values if float(v) != round(float(v)))
        off_grid = next((key for key in _OFF_GRID_SIGMAS if scheduler.config.get(key)), None)
        if off_grid is not None:  # measured: n ≤ 2 only (σ_max and σ_min), under leading, linspace and trailing
            raise ValueError(
                f"{kind.class_name} with {off_grid} visits fractional timesteps (e.g. {fractional:.2f}) for every "
                "step count above 2, under every spacing, and the explorer's models take integer timesteps: run "
                "at most 2 steps, or use sampler 'ddim' or 'ddpm'"
            )
        raise ValueError(
            f"{kind.class_name} visits fractional timesteps here (e.g. {fractional:.2f}), and the explorer's models "
            "take integer timesteps: choose a step count n with (T − 1)/(n − 1) an integer, or 'leading' or "
            "'trailing' spacing"
        )
    return tuple(int(v) for v in values.long())


def _final_timestep(kind: ShippedScheduler, config: Mapping[str, Any]) -> int:
    """DDIM and PNDM with set_alpha_to_one false land their last step on ᾱ at index 0; the rest on the data."""
    if kind.class_name in ("DDIMScheduler", "PNDMScheduler") and config.get("set_alpha_to_one", True) is False:
        return 0
    return END_OF_RUN


def scheduler_settings(
    denoiser: Denoiser,
    *,
    num_inference_steps: int | None = None,
    eta: float = 0.0,
    batch_size: int = 1,
    seed: int = 0,
    spacing: str | TimestepSpacing | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> SamplerSettings:
    """`resolve_settings` for sampler 'scheduler': the checkpoint's scheduler with its own timesteps.

    num_inference_steps ∈ [1, T] (default: the model's `default_steps`, else T); eta ∈ [0, 1] for DDIM only;
    spacing overrides the config's `timestep_spacing` (None keeps it). `fixed` holds the options the scheduler
    decides itself (variance, clip_sample, schedule, timesteps, clip_range): each must be None.
    """
    denoiser = as_denoiser(denoiser)
    for name, value in (fixed or {}).items():
        if value is not None:
            raise ValueError(
                f"{name} is the checkpoint's scheduler's own choice with sampler 'scheduler'; leave it unset"
            )
    if is_flow_scheduler(denoiser):  # FlowMatchEulerDiscreteScheduler (SD3, FLUX.1): shipped_flow, registered below
        options = {"num_inference_steps": num_inference_steps, "eta": eta, "batch_size": batch_size, "seed": seed}
        return FLOW_SCHEDULER_SETTINGS[0](denoiser, spacing=spacing, **options)
    config = shipped_config(denoiser)
    kind = shipped_kind(config)
    if spacing is not None:
        config["timestep_spacing"] = TimestepSpacing.parse(spacing).value
    total = denoiser.schedule.num_train_timesteps
    steps = num_inference_steps if num_inference_steps is not None else denoiser.default_steps or total
    steps = check_int("num_inference_steps", steps, 1, total)
    eta = check_float("eta", eta, 0.0, 1.0)
    if eta and kind.class_name != "DDIMScheduler":
        raise ValueError(f"eta applies to the DDIM scheduler only; {kind.class_name} takes no eta")
    scheduler = build_scheduler(config, steps)
    own_spacing = scheduler.config.get("timestep_spacing")
    if spacing is not None and own_spacing != config["timestep_spacing"]:
        raise ValueError(f"spacing: {kind.class_name} has no timestep_spacing to choose; leave spacing unset")
    timesteps = _timesteps_of(scheduler, kind)
    clipping = clipping_of(config)  # the config's clip_sample, else diffusers' default for the class
    return SamplerSettings(
        sampler=SamplerKind.SCHEDULER,
        timesteps=timesteps,
        eta=float(eta),
        variance=denoiser.variance_type,
        clip_sample=clipping.clip_sample,
        clip_range=clipping.clip_range,
        seed=check_int("seed", seed, 0, MAX_SEED),
        batch_size=check_int("batch_size", batch_size, 1, max_batch_size(denoiser.sample_shape)),
        schedule=denoiser.schedule,
        spacing=TimestepSpacing.parse(own_spacing or "linspace"),  # DPM-Solver singlestep: linspace, keyless
        final_timestep=_final_timestep(kind, config),
        scheduler_steps=steps,
        landings=scheduler_landings(scheduler, timesteps),
    )


# --- one model call ----------------------------------------------------------------------------------


def _step_kwargs(scheduler: Any, eta: float) -> dict[str, Any]:
    """The step() keywords a pipeline passes: eta where step() takes one (DDIM)."""
    accepted = inspect.signature(scheduler.step).parameters
    return {"eta": eta} if "eta" in accepted else {}


def _takes_generator(scheduler: Any) -> bool:
    return "generator" in inspect.signature(scheduler.step).parameters


def _to_vp(scheduler: Any, kind: ShippedScheduler, sample: torch.Tensor) -> torch.Tensor:
    """A σ-space sample at the scheduler's current step in the VP convention, with scale_model_input's own ops."""
    if not kind.sigma_space:
        return sample
    sigma = scheduler.sigmas[scheduler.step_index]
    return sample / ((sigma**2 + 1) ** 0.5)


def _noise_scale(
    x_prev: torch.Tensor, probe: torch.Tensor, noise: torch.Tensor, other: torch.Tensor, what: str
) -> torch.Tensor:
    """σ_z per sample ([B, 1, ..., 1]) from two step() results on noises z and z′: Δx = σ_z Δz, residual checked."""
    batch = x_prev.shape[0]
    dx = (x_prev - probe).double().reshape(batch, -1)
    dz = (noise - other).double().reshape(batch, -1)
    scale = (dx * dz).sum(dim=1) / (dz * dz).sum(dim=1)  # [B]
    residual = (dx - scale[:, None] * dz).abs().max()
    if residual > _NOISE_RESIDUAL * (1.0 + float(x_prev.abs().max())):
        raise RuntimeError(f"{what} did not add the noise the explorer gave it (residual {float(residual):.3g})")
    return append_dims(scale.float(), x_prev.ndim)


@dataclass
class _State:
    """The scheduler and its sample between calls (the only mutable thing of a run)."""

    scheduler: Any
    sample: torch.Tensor


def _call(
    denoiser: Denoiser,
    settings: SamplerSettings,
    kind: ShippedScheduler,
    state: _State,
    k: int,
) -> Step:
    """Model call k: run the model on scale_model_input(sample), step the scheduler, return the frame."""
    scheduler = state.scheduler
    t_tensor = scheduler.timesteps[k]
    t = settings.timesteps[k]
    x_t = scheduler.scale_model_input(state.sample, t_tensor)  # the VP state: the model's input
    output = denoiser.predict(x_t.to(denoiser.dtype), t)
    model_output = output.prediction.to(state.sample.dtype)
    shape = tuple(state.sample.shape)
    noise = step_noise(settings.seed, k, shape)
    kwargs = _step_kwargs(scheduler, settings.eta)
    probe = copy.deepcopy(scheduler) if _takes_generator(scheduler) else None
    if probe is not None:
        kwargs["generator"] = generator_for(settings.seed, k + 1)  # = the stream of step_noise(seed, k)
    result = scheduler.step(model_output, t_tensor, state.sample, **kwargs)
    prev_sample = result.prev_sample
    x_prev = _to_vp(scheduler, kind, prev_sample)
    std = torch.zeros((shape[0],) + (1,) * (len(shape) - 1))
    if probe is not None:
        kwargs["generator"] = torch.Generator().manual_seed(_PROBE_SEED + k)
        other = torch.randn(shape, generator=torch.Generator().manual_seed(_PROBE_SEED + k))
        probe_prev = _to_vp(probe, kind, probe.step(model_output, t_tensor, state.sample, **kwargs).prev_sample)
        if not torch.equal(probe_prev, x_prev):
            std = _noise_scale(x_prev.cpu(), probe_prev.cpu(), noise, other, kind.class_name)

    a = settings.alpha_of_call[k]  # the scheduler's own σ where it keeps one, else ᾱ[t] (explorer.diffusion.landings)
    x64, out64 = x_t.double().cpu(), model_output.double().cpu()
    views = {view.name: convert(out64, denoiser.prediction, view.prediction, x64, a).float() for view in FOUR_VIEWS}
    returned = getattr(result, "pred_original_sample", None)
    x_prev_cpu = x_prev.detach().to("cpu", torch.float32)
    state.sample = prev_sample
    return Step(
        index=k,
        timestep=t,
        prev_timestep=settings.prev_timesteps[k],
        x_t=x_t.detach().to("cpu", torch.float32),
        model_output=model_output.detach().to("cpu", torch.float32),
        x0_clipped=views["x0"] if returned is None else returned.detach().to("cpu", torch.float32),
        mean=x_prev_cpu - std * noise,
        std=std,
        noise=noise,
        x_prev=x_prev_cpu,
        **views,
        **_guidance_record(output),
    )


def _guidance_record(output: DenoiserOutput) -> dict[str, torch.Tensor]:
    """A conditional model's conditional and unconditional predictions and learned σ values (those it has), CPU
    float32. The scheduler itself is given the guided prediction only, as diffusers' pipelines give it."""
    parts = {name: getattr(output, name, None) for name in ("conditional", "unconditional", "variance_values")}
    return {name: value.detach().to("cpu", torch.float32) for name, value in parts.items() if value is not None}


# --- runs ----------------------------------------------------------------------------------------------


def iterate_scheduler(
    denoiser: Denoiser,
    settings: SamplerSettings,
    *,
    restart: tuple[torch.Tensor, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Step]:
    """Yield each model call of the checkpoint's scheduler as a `Step` (settings from `scheduler_settings`).

    `restart=(x_t, k)` continues a run from the recorded VP state x_t ([B, *sample_shape]) entering call k, with
    a fresh scheduler (`check_branchable` says where that is exact); else the run starts from x_T.
    """
    denoiser = as_denoiser(denoiser)
    if settings.sampler is not SamplerKind.SCHEDULER:
        raise ValueError(f"iterate_scheduler needs settings of sampler 'scheduler'; got {settings.sampler.value!r}")
    config = shipped_config(denoiser)
    kind = shipped_kind(config)
    scheduler = build_scheduler(config, settings.scheduler_steps, device=denoiser.device)
    if _timesteps_of(scheduler, kind) != settings.timesteps:  # the run overrode the config's spacing
        config["timestep_spacing"] = settings.spacing.value
        scheduler = build_scheduler(config, settings.scheduler_steps, device=denoiser.device)
    if _timesteps_of(scheduler, kind) != settings.timesteps:
        raise ValueError(f"these settings were not made for {denoiser.name}'s {kind.class_name}")
    shape = (settings.batch_size, *denoiser.sample_shape)
    if restart is None:
        first = 0
        sample = initial_noise(settings.seed, shape) * scheduler.init_noise_sigma
    else:
        x_start, first = restart
        check_branchable(settings, denoiser, first)
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(first)
        sample = x_start.to(torch.float32)
        if kind.sigma_space:
            sample = sample * ((scheduler.sigmas[first] ** 2 + 1) ** 0.5)
    state = _State(scheduler, sample.to(denoiser.device))
    return run_frames(
        lambda k: _call(denoiser, settings, kind, state, k), first, settings.num_inference_steps, progress
    )


def run_frames(
    call: Callable[[int], Step], first: int, count: int, progress: Callable[[int, int], None] | None
) -> Iterator[Step]:
    """Yield call(k) for k = first … count − 1 (without autograd), reporting each frame to `progress`."""
    for k in range(first, count):
        with torch.no_grad():
            step = call(k)
        if progress is not None:
            progress(frame_of(k), count)
        yield step


def check_branchable(settings: SamplerSettings, denoiser: Denoiser, from_index: int) -> None:
    """Refuse a branch from frame `from_index` of a scheduler run where a fresh scheduler cannot continue it (a flow
    Euler step keeps nothing: any frame)."""
    check_int("from_index", from_index, 0, settings.num_inference_steps - 1)
    if is_flow_scheduler(denoiser):
        return
    kind = shipped_kind(shipped_config(as_denoiser(denoiser)))
    if kind.multistep:
        raise ValueError(
            f"cannot branch from a {kind.label} frame: its step depends on earlier model outputs it keeps inside "
            "itself, which a rewound frame does not have"
        )
    if not kind.branchable_at(from_index):
        raise ValueError(
            f"cannot branch from frame {frame_of(from_index)}: it is {kind.label}'s 2nd-order call, which finishes "
            "a step from the state and slope of the call before it; branch from a 1st-order frame"
        )


def branch_scheduler_settings(
    settings: SamplerSettings,
    denoiser: Denoiser,
    from_index: int,
    *,
    remaining_steps: int | None = None,
    **changes: Any,
) -> SamplerSettings:
    """The settings of a branch of a scheduler run: the same scheduler and timesteps; only DDIM's eta may change."""
    if settings.sampler is not SamplerKind.SCHEDULER or changes.get("sampler", settings.sampler) != settings.sampler:
        raise ValueError(
            "a branch cannot switch to or from the checkpoint's own scheduler: its timesteps and state are its own"
        )
    check_branchable(settings, denoiser, from_index)
    if remaining_steps is not None:
        raise ValueError("remaining_steps: a scheduler run keeps its scheduler's own timesteps")
    unknown = set(changes) - {"sampler", "eta"}
    if unknown:
        raise ValueError(f"a branch of a scheduler run can change only eta (DDIM); got {', '.join(sorted(unknown))}")
    eta = check_float("eta", changes.get("eta", settings.eta), 0.0, 1.0)
    if eta and (is_flow_scheduler(denoiser) or shipped_kind(shipped_config(denoiser)).class_name != "DDIMScheduler"):
        raise ValueError("eta applies to the DDIM scheduler only")
    return replace(settings, eta=float(eta))


OWN_SCHEDULER_SETTINGS.append(scheduler_settings)  # resolve_settings(sampler="scheduler") calls it
