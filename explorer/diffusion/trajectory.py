"""The compact form of a recorded run that the UI keeps per session: fp16 views, stacked over steps.

x_t stays float32, so a branch restarted from any frame continues exactly where the run was.

A `Trajectory` holds ten float32 tensors per step. The UI needs six views (x_t, ε̂, x̂₀, v̂, μ, z), the
per-sample σ and the final sample; the rest is derived: x_prev of step k is x_t of step k + 1,
x̂₀ clipped is a clamp, and the model output is one of the three views. Views are stored after they were
computed in fp32 or better (re-deriving x̂₀ from an fp16 ε̂ at t = T is off by 0.6).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from explorer.diffusion.parameterization import Prediction

VIEWS = ("x_t", "eps", "x0", "v", "mean", "noise")


@dataclass(frozen=True)
class CompactTrajectory:
    """Stacked views [S, B, *shape] in float16 (x_t in float32), S = number of steps; index k is step k."""

    denoiser_name: str
    prediction: Prediction
    timesteps: np.ndarray  # int64 [S], 0-based, descending
    prev_timesteps: np.ndarray  # int64 [S], −1 for the final step
    x_t: torch.Tensor  # [S, B, *shape]
    eps: torch.Tensor
    x0: torch.Tensor
    v: torch.Tensor
    mean: torch.Tensor
    noise: torch.Tensor
    std: torch.Tensor  # float32 [S, B]: σ of each step and sample (its mean over pixels for learned variance)
    clipped_fraction: torch.Tensor  # float32 [S, B]: share of x̂₀ pixels the step clipped
    samples: torch.Tensor  # float32 [B, *shape]: the final x_0
    clip_sample: bool
    clip_range: float
    seed: int

    @classmethod
    def from_trajectory(cls, trajectory) -> CompactTrajectory:  # explorer.diffusion.sampler.Trajectory
        steps = trajectory.steps
        views = {name: torch.stack([getattr(s, name) for s in steps]).to(torch.float16) for name in VIEWS}
        views["x_t"] = torch.stack([s.x_t for s in steps]).float()
        batch = steps[0].x_t.shape[0]
        std = torch.stack([s.std.reshape(batch, -1).mean(dim=1) for s in steps]).float()
        clipped = torch.stack([(s.x0 != s.x0_clipped).reshape(batch, -1).float().mean(dim=1) for s in steps])
        settings = trajectory.settings
        return cls(
            denoiser_name=trajectory.denoiser_name,
            prediction=trajectory.prediction,
            timesteps=np.array([s.timestep for s in steps], dtype=np.int64),
            prev_timesteps=np.array([s.prev_timestep for s in steps], dtype=np.int64),
            std=std,
            clipped_fraction=clipped,
            samples=trajectory.samples.float().clone(),
            clip_sample=settings.clip_sample,
            clip_range=settings.clip_range,
            seed=settings.seed,
            **views,
        )

    def __len__(self) -> int:
        return int(self.timesteps.size)

    @property
    def nbytes(self) -> int:
        tensors = [getattr(self, f.name) for f in fields(self)]
        return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor)) + sum(
            a.nbytes for a in tensors if isinstance(a, np.ndarray)
        )

    def view(self, name: str, index: int) -> torch.Tensor:
        """View `name` (x_t, eps, x0, v, mean, noise, x0_clipped or x_prev) at step `index`, float32 [B, *shape]."""
        if not 0 <= index < len(self):
            raise ValueError(f"frame must be an integer in [0, {len(self) - 1}]; got {index}")
        if name == "x0_clipped":
            x0 = self.x0[index].float()
            return x0.clamp(-self.clip_range, self.clip_range) if self.clip_sample else x0
        if name == "x_prev":
            return self.samples.clone() if index == len(self) - 1 else self.x_t[index + 1].float()
        if name not in VIEWS:
            raise ValueError(f"view must be one of {', '.join((*VIEWS, 'x0_clipped', 'x_prev'))}; got {name!r}")
        return getattr(self, name)[index].float()
