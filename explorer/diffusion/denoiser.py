"""The denoiser contract every model satisfies: a trained network, a Hub checkpoint or the exact oracle.

A denoiser is called as `denoiser(x_t, timestep) -> output`: x_t is [B, *sample_shape], timestep is
diffusers' 0-based index (an int or a [B] tensor; paper t = timestep + 1), and output is [B, *sample_shape]
in the denoiser's own `prediction` space (ε, x₀ or v). `predict` also returns the variance channels of
learned-variance models.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from explorer.diffusion.parameterization import Prediction
from explorer.diffusion.posterior import VarianceType
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.tensors import TimestepLike


@dataclass(frozen=True)
class DenoiserOutput:
    """One forward pass. prediction: [B, *sample_shape]; variance_values: the same shape, in [−1, 1],
    for learned-variance models (`learned_range`), else None."""

    prediction: torch.Tensor
    variance_values: torch.Tensor | None = None


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
