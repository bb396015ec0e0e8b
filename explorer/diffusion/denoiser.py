"""The denoiser contract every model satisfies: a trained network, a Hub checkpoint or the exact oracle.

A denoiser is called as `denoiser(x_t, timestep) -> output`: x_t is [B, *sample_shape], timestep is
diffusers' 0-based timestep (an int or a [B] tensor; see `indexing`), and output is [B, *sample_shape]
in the denoiser's own `prediction` space (ε, x₀ or v). `predict` also returns the variance channels of
learned-variance models.

Three ways to bring a network:
- subclass `Denoiser`: set `name`, `prediction`, `schedule`, `sample_shape` and implement `predict`;
  every other attribute has a default (no clipping, `fixed_small` variance, CPU, float32);
- `wrap(fn, prediction=..., schedule=..., sample_shape=...)`: a plain callable `fn(x_t, timestep) -> output`;
- any object with `.prediction`, `.schedule`, `.sample_shape`, `.name` that is callable as above: the sampler
  and teacher forcing accept it as it is (`as_denoiser`), reading the optional attributes when present.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from explorer.diffusion.parameterization import Prediction, convert
from explorer.diffusion.posterior import VarianceType
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.tensors import TimestepLike


@dataclass(frozen=True)
class DenoiserOutput:
    """One step's model output. prediction: [B, *sample_shape] (the guided one for a conditional model);
    variance_values: the same shape, in [−1, 1], for learned-variance models (`learned_range`), else None;
    conditional, unconditional: a conditional model's two predictions in its own output space (both None for an
    unconditional model; unconditional None when guidance scale ≤ 1 ran one pass)."""

    prediction: torch.Tensor
    variance_values: torch.Tensor | None = None
    conditional: torch.Tensor | None = None
    unconditional: torch.Tensor | None = None


class Denoiser(ABC):
    """Base class: subclasses set the attributes below and implement `predict`."""

    name: str
    prediction: Prediction
    schedule: Schedule  # the training schedule
    sample_shape: tuple[int, ...]  # one sample, e.g. (C, H, W) or (2,)
    clip_sample: bool = False  # the checkpoint's own default for clipping x̂₀ to [−1, 1]
    variance_type: VarianceType = VarianceType.FIXED_SMALL  # the checkpoint's own reverse variance
    learned_variance: bool = False  # True when the network also outputs variance_values
    num_parameters: int = 0
    description: str = ""
    # The checkpoint's scheduler_config.json as read (with its `_class_name`); empty for models without one.
    # resolve_settings reads `timestep_spacing`, `steps_offset` and `set_alpha_to_one` from it.
    scheduler_config: Mapping[str, Any] = MappingProxyType({})
    default_steps: int | None = None  # steps a run takes when none are given (None: T, every training step)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @abstractmethod
    def predict(self, x_t: torch.Tensor, timestep: TimestepLike) -> DenoiserOutput:
        """Run the model on x_t ([B, *sample_shape]) at 0-based `timestep`; tensors stay on x_t's device."""

    def __call__(self, x_t: torch.Tensor, timestep: TimestepLike) -> torch.Tensor:
        return self.predict(x_t, timestep).prediction

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, prediction={self.prediction.value}, "
            f"sample_shape={self.sample_shape}, T={self.schedule.num_train_timesteps})"
        )


class FunctionDenoiser(Denoiser):
    """A plain callable `fn(x_t, timestep) -> output` ([B, *sample_shape] in the `prediction` space) as a denoiser."""

    def __init__(
        self,
        fn: Callable[[torch.Tensor, TimestepLike], torch.Tensor],
        *,
        prediction: str | Prediction,
        schedule: Schedule,
        sample_shape: tuple[int, ...],
        name: str = "wrapped",
        clip_sample: bool = False,
        variance_type: str | VarianceType = VarianceType.FIXED_SMALL,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        scheduler_config: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"wrap needs a callable fn(x_t, timestep); got {type(fn).__name__}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be an explorer Schedule; got {type(schedule).__name__}")
        shape = tuple(int(size) for size in sample_shape)
        if not shape or any(size < 1 for size in shape):
            raise ValueError(f"sample_shape must be a non-empty tuple of positive sizes; got {sample_shape!r}")
        self.fn = fn
        self.name = str(name)
        self.prediction = Prediction.parse(prediction)
        self.schedule = schedule
        self.sample_shape = shape
        self.clip_sample = bool(clip_sample)
        self.variance_type = VarianceType.parse(variance_type)
        self._device = torch.device(device)
        self._dtype = dtype
        self.scheduler_config = dict(scheduler_config or {})

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def predict(self, x_t: torch.Tensor, timestep: TimestepLike) -> DenoiserOutput:
        output = self.fn(x_t, timestep)
        if not isinstance(output, torch.Tensor) or output.shape != x_t.shape:
            got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ValueError(f"{self.name}: fn must return a tensor shaped like x_t {tuple(x_t.shape)}; got {got}")
        return DenoiserOutput(prediction=output)


def wrap(
    fn: Callable[[torch.Tensor, TimestepLike], torch.Tensor],
    *,
    prediction: str | Prediction,
    schedule: Schedule,
    sample_shape: tuple[int, ...],
    **options: Any,
) -> FunctionDenoiser:
    """A denoiser from a plain callable. `options`: name, clip_sample, variance_type, device, dtype,
    scheduler_config (a diffusers scheduler config: its timestep_spacing, steps_offset, set_alpha_to_one)."""
    return FunctionDenoiser(fn, prediction=prediction, schedule=schedule, sample_shape=sample_shape, **options)


REQUIRED = ("prediction", "schedule", "sample_shape", "name")
OPTIONAL = ("clip_sample", "variance_type", "device", "dtype", "scheduler_config")


def as_denoiser(model: Any) -> Denoiser:
    """`model` itself when it is a `Denoiser`; else a duck-typed model object, wrapped.

    The object must be callable as `model(x_t, timestep)` and have `.prediction`, `.schedule`, `.sample_shape`
    and `.name`; `.clip_sample`, `.variance_type`, `.device` and `.dtype` are read when present.
    """
    if isinstance(model, Denoiser):
        return model
    missing = [name for name in REQUIRED if not hasattr(model, name)]
    if missing or not callable(model):
        needs = ", ".join(f".{name}" for name in missing) + (" and a __call__" if not callable(model) else "")
        raise TypeError(
            f"{type(model).__name__} is not a denoiser: it needs {needs.lstrip(', ')} "
            "(or use explorer.wrap(fn, prediction=..., schedule=..., sample_shape=...))"
        )
    options = {name: getattr(model, name) for name in OPTIONAL if hasattr(model, name)}
    return wrap(
        model,
        prediction=model.prediction,
        schedule=model.schedule,
        sample_shape=model.sample_shape,
        name=model.name,
        **options,
    )


def x0_at_noise_level(denoiser: Denoiser, x_t: torch.Tensor, alpha_cumprod: float) -> torch.Tensor:
    """The denoiser's x̂₀ for x_t ([B, *sample_shape]) at the noise level ᾱ of another schedule: the model runs at
    its own timestep whose ᾱ is nearest (in log space). Returns float64 [B, *sample_shape] on the CPU."""
    step = denoiser.schedule.nearest_timestep(alpha_cumprod)
    with torch.no_grad():
        output = denoiser(x_t.to(denoiser.device, denoiser.dtype), step).to("cpu", torch.float64)
    return convert(
        output,
        denoiser.prediction,
        Prediction.SAMPLE,
        x_t.to(torch.float64),
        float(denoiser.schedule.alphas_cumprod[step]),
    )
