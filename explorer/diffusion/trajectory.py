"""Records of a run: each `Step` in full (float32), a `Trajectory` of them, and the compact form the UI keeps.

A `Trajectory` holds eleven float32 tensors per step. The compact form keeps six views of
`explorer.diffusion.views` (x_t, x̂₀, ε̂, v̂, μ, z) stacked over steps in float16, with x_t in float32 so that a
branch restarted from any frame continues exactly where the run was, plus the per-sample σ and the final sample.
The rest is derived: x_prev of step k is x_t of the next step, x̂₀ clipped is a clamp, û = ε̂ − x̂₀ a difference
(no division, so its error is the rounding its two stored terms carry), and the model output is its own view.
Views are stored after they were computed in fp32 or better (re-deriving x̂₀ from an fp16 ε̂ at t = T is off by
0.6). `CompactRecorder` writes each step into preallocated tensors as it arrives, so a run never
holds its steps at full precision; `compact_nbytes` says what a run will need before it starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from explorer.diffusion.conditioning import Conditioning
from explorer.diffusion.noise import initial_noise
from explorer.diffusion.parameterization import Prediction, convert
from explorer.diffusion.settings import SamplerSettings
from explorer.diffusion.views import STEP_VIEWS, view_of


@dataclass(frozen=True)
class Step:
    """One reverse step k, as CPU tensors [B, *shape] (std broadcastable: [B, 1, ..., 1] or [B, *shape]).

    x_prev == mean + std * noise holds exactly; timestep and prev_timestep are 0-based (−1 = the end).
    eps, x0, v and u are the model's prediction in all four spaces (`explorer.diffusion.views`), converted from
    model_output with the step's own ᾱ; u is the flow velocity ε − x₀ at the σ of equal SNR.
    A conditional model's step also keeps its conditional and unconditional predictions (model output space; the
    unconditional one only when guidance ran a second pass), and a learned-variance model's variance values.
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
    u: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    noise: torch.Tensor
    x_prev: torch.Tensor
    conditional: torch.Tensor | None = None
    unconditional: torch.Tensor | None = None
    variance_values: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        tensors = (self.x_t, self.model_output, self.eps, self.x0, self.x0_clipped, self.v, self.u)
        tensors += (self.mean, self.std, self.noise, self.x_prev, self.conditional, self.unconditional)
        tensors += (self.variance_values,)
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


@dataclass(frozen=True)
class Trajectory(Sequence[Step]):
    """A recorded run: steps[k] calls the model at timesteps[k] and lands on settings.prev_timesteps[k]; samples is
    the final x_0 [B, *shape]."""

    denoiser_name: str
    prediction: Prediction
    settings: SamplerSettings
    steps: tuple[Step, ...]
    conditioning: Conditioning | None = None  # a conditional model's prompt or class label and guidance

    def __len__(self) -> int:
        return len(self.steps)

    def guidance_x0(self, index: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """x̂₀ of step `index`'s conditional and unconditional predictions ([B, *shape] each, None where not
        recorded): what guidance moves the guided x̂₀ between. ᾱ is the one the step's own views use
        (`SamplerSettings.alpha_of_call`: 1/(1 + σ²) under a scheduler's σ, Karras σ included), so with guidance
        rescale φ = 0, step.x0 = x̂₀_u + w (x̂₀_c − x̂₀_u)."""
        step = self.steps[index]
        a_t = self.settings.alpha_of_call[step.index]

        def x0_of(output: torch.Tensor | None) -> torch.Tensor | None:
            return None if output is None else convert(output, self.prediction, Prediction.SAMPLE, step.x_t, a_t)

        return x0_of(step.conditional), x0_of(step.unconditional)

    def __getitem__(self, index):  # type: ignore[override]
        return self.steps[index]

    @property
    def x_T(self) -> torch.Tensor:
        return self.steps[0].x_t

    @property
    def initial_noise(self) -> torch.Tensor:
        """The unit Gaussian the run started from, [B, *shape] (`noise.initial_noise` of its seed), in diffusers'
        convention: before a scheduler's init_noise_sigma, so `pipe(latents=…)` replays the run (FLUX: packed)."""
        return initial_noise(self.settings.seed, tuple(self.x_T.shape))

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

    def compact(self) -> CompactTrajectory:
        """The fp16 form the UI keeps per session."""
        return CompactTrajectory.from_trajectory(self)


DERIVED = ("x0_clipped", "x_prev", "u")  # what the compact form derives
VIEWS = tuple(view.name for view in STEP_VIEWS if view.name not in DERIVED)  # what it stores per step


GUIDANCE_VIEWS = ("x0_conditional", "x0_unconditional")  # a guided run's compact form also keeps these (float16)


def compact_nbytes(num_steps: int, batch_size: int, sample_shape: tuple[int, ...], guided: bool = False) -> int:
    """Bytes a compact run of this size holds: x_t in float32, five views in float16 (seven for a `guided` run of a
    conditional model: x̂₀ of its conditional and unconditional predictions too), σ and clipped share (float32
    [S, B]), the final samples (float32) and two int64 timestep arrays."""
    per_state = batch_size * math.prod(sample_shape)
    extra = len(GUIDANCE_VIEWS) if guided else 0
    views = num_steps * per_state * (4 + 2 * (len(VIEWS) - 1 + extra))
    return views + num_steps * batch_size * 4 * 2 + per_state * 4 + num_steps * 8 * 2


@dataclass(frozen=True)
class CompactTrajectory:
    """Stacked views [S, B, *shape] in float16 (x_t in float32), S = number of steps; index k is step k."""

    denoiser_name: str
    prediction: Prediction
    settings: SamplerSettings
    timesteps: np.ndarray  # int64 [S], 0-based, descending
    prev_timesteps: np.ndarray  # int64 [S]: where step k lands (SamplerSettings.prev_timesteps), −1 = the data
    x_t: torch.Tensor  # [S, B, *shape]
    eps: torch.Tensor
    x0: torch.Tensor
    v: torch.Tensor
    mean: torch.Tensor
    noise: torch.Tensor
    std: torch.Tensor  # float32 [S, B]: σ of each step and sample (its mean over pixels for learned variance)
    clipped_fraction: torch.Tensor  # float32 [S, B]: share of x̂₀ pixels the step clipped
    samples: torch.Tensor  # float32 [B, *shape]: the final x_0
    x0_conditional: torch.Tensor | None = None  # float16 [S, B, *shape]: x̂₀ of a guided run's conditional prediction
    x0_unconditional: torch.Tensor | None = None  # and of its unconditional one (None unless guidance ran two passes)

    @classmethod
    def from_trajectory(cls, trajectory: Trajectory) -> CompactTrajectory:
        recorder = CompactRecorder(trajectory.denoiser_name, trajectory.prediction, trajectory.settings)
        for step in trajectory.steps:
            recorder.add(step)
        return recorder.finish()

    def __len__(self) -> int:
        return int(self.timesteps.size)

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def clip_sample(self) -> bool:
        return self.settings.clip_sample

    @property
    def clip_range(self) -> float:
        return self.settings.clip_range

    @property
    def nbytes(self) -> int:
        tensors = [getattr(self, f.name) for f in fields(self)]
        return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor)) + sum(
            a.nbytes for a in tensors if isinstance(a, np.ndarray)
        )

    @property
    def u(self) -> torch.Tensor:
        """û = ε̂ − x̂₀ of every step, [S, B, *shape] float16 (the flow velocity at the σ of equal SNR), derived."""
        return (self.eps.float() - self.x0.float()).half()

    def view(self, name: str, index: int) -> torch.Tensor:
        """View `name` (x_t, eps, x0, v, u, mean, noise, x0_clipped or x_prev) at step `index`, float32 [B, *shape]."""
        if not 0 <= index < len(self):
            raise ValueError(f"step must be an integer in [0, {len(self) - 1}]; got {index}")
        if name == "x0_clipped":
            x0 = self.x0[index].float()
            return x0.clamp(-self.clip_range, self.clip_range) if self.clip_sample else x0
        if name == "u":
            return self.eps[index].float() - self.x0[index].float()
        if name == "x_prev":
            return self.samples.clone() if index == len(self) - 1 else self.x_t[index + 1].float()
        if name in GUIDANCE_VIEWS:
            stored = getattr(self, name)
            if stored is None:
                raise ValueError(f"view {name} needs a guided run of a conditional model (guidance scale above 1)")
            return stored[index].float()
        if name not in VIEWS:
            raise ValueError(f"view must be one of {', '.join((*VIEWS, *DERIVED, *GUIDANCE_VIEWS))}; got {name!r}")
        return getattr(self, name)[index].float()

    def to_trajectory(self, until: int) -> Trajectory:
        """Steps 0..until as a `Trajectory` (what `branch` keeps and restarts from).

        x_t stays float32, so step `until` restarts from the recorded state itself; the other views come back
        from float16.
        """
        if not 0 <= until < len(self):
            raise ValueError(f"step must be an integer in [0, {len(self) - 1}]; got {until}")
        own = view_of(self.prediction).name
        steps = []
        for k in range(until + 1):
            views = {name: self.view(name, k) for name in (*VIEWS, *DERIVED)}
            std = self.std[k].reshape(-1, *([1] * (views["x_t"].ndim - 1)))  # [B, 1, ..., 1]
            steps.append(
                Step(
                    index=k,
                    timestep=int(self.timesteps[k]),
                    prev_timestep=int(self.prev_timesteps[k]),
                    model_output=views[own],
                    std=std,
                    **views,
                )
            )
        return Trajectory(self.denoiser_name, self.prediction, self.settings, tuple(steps))


def clipped_share(x0: torch.Tensor, settings: SamplerSettings) -> torch.Tensor:
    """Share of each sample's x̂₀ elements ([B, *shape]) outside [−r, r] when the run clips (`settings.clip_sample`,
    set by `explorer.diffusion.clipping`), else 0: the same rule as the clipped view. Returns float32 [B]."""
    batch = x0.shape[0]
    if not settings.clip_sample:
        return torch.zeros(batch, dtype=torch.float32)
    return (x0.abs() > settings.clip_range).reshape(batch, -1).float().mean(dim=1)


class CompactRecorder:
    """Builds a `CompactTrajectory` step by step into preallocated tensors (never a full-precision copy)."""

    def __init__(self, denoiser_name: str, prediction: Prediction, settings: SamplerSettings) -> None:
        self.denoiser_name, self.prediction, self.settings = denoiser_name, prediction, settings
        self.count = 0
        self._views: dict[str, torch.Tensor] = {}
        self._std: torch.Tensor | None = None
        self._clipped: torch.Tensor | None = None
        self._samples: torch.Tensor | None = None
        self._guidance: dict[str, torch.Tensor] = {}

    @classmethod
    def continuing(cls, compact: CompactTrajectory, from_index: int, settings: SamplerSettings) -> CompactRecorder:
        """A recorder for a branch: steps 0..from_index−1 copied from `compact`, the rest to come with `settings`
        (which keeps those steps' timesteps, seed and batch; see `explorer.diffusion.sampler.branch_settings`)."""
        if not 0 <= from_index < len(compact) or settings.timesteps[:from_index] != tuple(
            compact.timesteps[:from_index]
        ):
            raise ValueError(f"a branch from step {from_index} must keep the run's first {from_index} timesteps")
        recorder = cls(compact.denoiser_name, compact.prediction, settings)
        recorder._allocate(compact.x_t[0])
        for name in VIEWS:
            recorder._views[name][:from_index] = getattr(compact, name)[:from_index]
        if compact.x0_unconditional is not None:
            recorder._allocate_guidance(compact.x_t[0])
            for name in GUIDANCE_VIEWS:
                recorder._guidance[name][:from_index] = getattr(compact, name)[:from_index]
        recorder._std[:from_index] = compact.std[:from_index]
        recorder._clipped[:from_index] = compact.clipped_fraction[:from_index]
        recorder.count = from_index
        return recorder

    def _allocate(self, like: torch.Tensor) -> None:
        total = self.settings.num_inference_steps
        for name in VIEWS:
            dtype = torch.float32 if name == "x_t" else torch.float16
            self._views[name] = torch.empty((total, *like.shape), dtype=dtype)  # [S, B, *shape]
        self._std = torch.empty((total, like.shape[0]), dtype=torch.float32)
        self._clipped = torch.empty((total, like.shape[0]), dtype=torch.float32)

    def _allocate_guidance(self, like: torch.Tensor) -> None:
        total = self.settings.num_inference_steps
        for name in GUIDANCE_VIEWS:
            self._guidance[name] = torch.empty((total, *like.shape), dtype=torch.float16)  # [S, B, *shape]

    def add(self, step: Step) -> None:
        """Record the next step (steps arrive in order, k = 0, 1, …)."""
        if step.index != self.count or self.count >= self.settings.num_inference_steps:
            raise ValueError(f"expected step {self.count} of {self.settings.num_inference_steps}; got {step.index}")
        if not self._views:
            self._allocate(step.x_t)
        for name in VIEWS:
            self._views[name][self.count] = getattr(step, name)
        batch = step.x_t.shape[0]
        self._std[self.count] = step.std.reshape(batch, -1).mean(dim=1)
        self._clipped[self.count] = clipped_share(step.x0, self.settings)
        if step.unconditional is not None and step.conditional is not None:
            if not self._guidance:
                self._allocate_guidance(step.x_t)
            a_t = self.settings.alpha_of_call[step.index]  # the ᾱ of the step's own views
            for name, output in zip(GUIDANCE_VIEWS, (step.conditional, step.unconditional), strict=True):
                x0 = convert(output, self.prediction, Prediction.SAMPLE, step.x_t, a_t)  # fp32, then stored
                self._guidance[name][self.count] = x0
        self._samples = step.x_prev
        self.count += 1

    def finish(self) -> CompactTrajectory:
        """The complete run; ValueError if steps are missing (a stopped run is not kept)."""
        total = self.settings.num_inference_steps
        if self.count != total:
            raise ValueError(f"the run stopped after {self.count} of {total} steps")
        timesteps = np.asarray(self.settings.timesteps, dtype=np.int64)
        prev = np.asarray(self.settings.prev_timesteps, dtype=np.int64)  # where each step lands (landings)
        return CompactTrajectory(
            denoiser_name=self.denoiser_name,
            prediction=self.prediction,
            settings=self.settings,
            timesteps=timesteps,
            prev_timesteps=prev,
            std=self._std,
            clipped_fraction=self._clipped,
            samples=self._samples.float().clone(),
            **self._views,
            **self._guidance,
        )
