"""Straight training paths, curved sampling paths: rectified flow on a finite data set, integrated exactly.

A flow model is trained on straight conditional paths x_σ = (1 − σ) x₀ + σ ε (constant velocity ε − x₀), but what
it learns, and what its sampler follows, is their posterior average, the marginal velocity
u*(x_σ, σ) = E[ε − x₀ | x_σ] = (x_σ − E[x₀ | x_σ]) / σ (`flow.exact_velocity`). Paths that cross are averaged, so
the trajectories of dx/dσ = u* bend, and a few Euler steps along u* miss where the exact path ends (Liu et al. 2023,
"Flow straight and fast", §2). Notation (float64 throughout; D dimensions, K paths, L grid points):

    code name     symbol                    meaning
    data          {x_n}                     the finite training set, [N, D], whose exact velocity is u*
    start         x_{σ₀}                    where each path starts, [K, D] (σ₀ = 1: the noise ε itself)
    sigmas        σ_j                       the grid the paths are read on, descending from σ₀ to 0, [L]
    curved        x_σ                       the solution of dx/dσ = u*(x, σ) from the start, [K, L, D]: RK4 in
                                            s = log σ, where dx/ds = x − E[x₀ | x] stays bounded as σ → 0
    end           x₀*                       where it ends: E[x₀ | x_σ] at the smallest σ, which is a data point
    eps           ε = (x_{σ₀} − (1 − σ₀) x₀*) / σ₀   the noise of the straight path through the start and x₀*
    straight      (1 − σ) x₀* + σ ε         the conditional path of the training pair (x₀*, ε), [K, L, D]
    gap           max_σ ‖x_σ − straight_σ‖  per path, [K]: how far the true path strays from its chord
    length_ratio  ∫‖dx_σ‖ / ‖x_{σ₀} − x₀*‖   per path, [K]: 1 for a straight path
    euler_error   RMS_k ‖Euler_n(x_{σ₀}) − x₀*‖   after n equal Euler steps of u* from σ₀ to 0 (`EULER_STEPS`)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from explorer.diffusion.flow import path_scale, sigma_of_alpha_cumprod

SIGMA_MIN = 1e-5  # the paths are integrated down to this σ; x₀* = E[x₀ | x_σ] there (then σ = 0 is appended)
INTEGRATION_STEPS = 1000  # RK4 steps, equal in log σ, from σ₀ to SIGMA_MIN (tests: 1e-6 from a 10⁻¹⁰ solver)
EULER_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # step counts whose Euler endpoints are measured
EULER_TOLERANCE = 0.05  # "reaches the exact endpoints": RMS distance below this (the data's RMS is about 1)


@dataclass(frozen=True)
class FlowPaths:
    """K exact marginal-velocity paths, their straight conditional chords, and how Euler steps along u* fare.

    Arrays are float64: sigmas [L] (descending, last 0), curved and straight [K, L, D], start/end/eps [K, D],
    gap and length_ratio [K], euler_steps (int64) and euler_error [M].
    """

    sigmas: np.ndarray
    curved: np.ndarray
    straight: np.ndarray
    start: np.ndarray
    end: np.ndarray
    eps: np.ndarray
    gap: np.ndarray
    length_ratio: np.ndarray
    euler_steps: np.ndarray
    euler_error: np.ndarray

    def steps_to_reach(self, tolerance: float = EULER_TOLERANCE) -> int | None:
        """The fewest Euler steps measured whose endpoints lie within `tolerance` (RMS) of x₀*; None if none do."""
        reached = np.flatnonzero(self.euler_error < tolerance)
        return int(self.euler_steps[reached[0]]) if reached.size else None


class ExactVelocity:
    """u*(x, σ) = (x − E[x₀ | x_σ = x]) / σ of the finite set data [N, D], for many calls at x [K, D] (float64).

    The posterior is written on the flow path itself: p(x_n | x_σ) ∝ exp(−‖x_σ − (1 − σ) x_n‖² / (2σ²)), the same
    weights as `flow.exact_velocity` (which goes through the VP point of equal SNR), with ‖x_n‖² computed once.
    """

    def __init__(self, data: torch.Tensor) -> None:
        self.points = data.double()  # [N, D]
        self.squares = (self.points**2).sum(-1)  # [N]

    def posterior_mean(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """E[x₀ | x_σ = x], [K, D]; at σ = 1 the data's mean (x carries no information)."""
        keep = 1.0 - sigma
        logits = (keep * (x @ self.points.T) - 0.5 * keep**2 * self.squares[None, :]) / sigma**2  # [K, N]
        return torch.softmax(logits, dim=-1) @ self.points

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        return (x - self.posterior_mean(x, sigma)) / sigma


def _check(data: torch.Tensor, start: torch.Tensor, sigma_start: float) -> None:
    if data.ndim != 2 or start.ndim != 2 or data.shape[1] != start.shape[1]:
        raise ValueError(f"data [N, D] and start [K, D] must share D; got {tuple(data.shape)} and {tuple(start.shape)}")
    if not SIGMA_MIN < sigma_start <= 1:
        raise ValueError(f"the starting σ must lie in ({SIGMA_MIN:g}, 1]; got {sigma_start}")


def integrate_exact(
    data: torch.Tensor, start: torch.Tensor, sigma_start: float = 1.0, intervals: int = INTEGRATION_STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """Solve dx/dσ = u*(x, σ) from x_{σ₀} = start ([K, D]) down to σ = 0: (sigmas [L], paths [K, L, D]),
    L = intervals + 2.

    RK4 over `intervals` equal intervals in s = log σ down to SIGMA_MIN (dx/ds = σ u* = x − E[x₀ | x]), then
    σ = 0, where the path is E[x₀ | x] at SIGMA_MIN: the data point the posterior has collapsed onto.
    """
    _check(data, start, sigma_start)
    velocity = ExactVelocity(data)

    def slope(x: torch.Tensor, s: float) -> torch.Tensor:  # dx/ds = σ u*(x, σ) = x − E[x₀ | x]
        return x - velocity.posterior_mean(x, float(np.exp(s)))

    grid = np.linspace(np.log(sigma_start), np.log(SIGMA_MIN), intervals + 1)  # s, descending
    x = start.double().clone()
    path = [x]
    for s, s_next in itertools.pairwise(grid):
        h = s_next - s
        k1 = slope(x, s)
        k2 = slope(x + 0.5 * h * k1, s + 0.5 * h)
        k3 = slope(x + 0.5 * h * k2, s + 0.5 * h)
        k4 = slope(x + h * k3, s_next)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        path.append(x)
    end = velocity.posterior_mean(x, SIGMA_MIN)
    path.append(end)
    sigmas = np.append(np.exp(grid), 0.0)
    sigmas[0] = sigma_start  # exp(log σ₀) may differ from σ₀ in the last bit
    return sigmas, torch.stack(path, dim=1).numpy()  # [L], [K, L, D]


def euler_endpoints(data: torch.Tensor, start: torch.Tensor, count: int, sigma_start: float = 1.0) -> np.ndarray:
    """Where `count` equal flow Euler steps x ← x + (σ' − σ) u*(x, σ) from σ₀ to 0 end, [K, D] float64."""
    _check(data, start, sigma_start)
    if count < 1:
        raise ValueError(f"Euler steps must be at least 1; got {count}")
    velocity = ExactVelocity(data)
    sigmas = np.linspace(sigma_start, 0.0, count + 1)  # count intervals
    x = start.double().clone()
    for sigma, sigma_next in itertools.pairwise(sigmas):
        x = x + (sigma_next - sigma) * velocity(x, float(sigma))
    return x.numpy()


def flow_paths(data: torch.Tensor, start: torch.Tensor, sigma_start: float = 1.0) -> FlowPaths:
    """The exact paths from `start` ([K, D] at σ₀), their straight chords and the Euler errors (`FlowPaths`)."""
    sigmas, curved = integrate_exact(data, start, sigma_start)
    first, end = curved[:, 0], curved[:, -1]  # [K, D]
    eps = (first - (1 - sigma_start) * end) / sigma_start
    level = sigmas[None, :, None]  # [1, L, 1]
    straight = (1 - level) * end[:, None, :] + level * eps[:, None, :]  # [K, L, D]
    gap = np.linalg.norm(curved - straight, axis=-1).max(axis=1)
    length = np.linalg.norm(np.diff(curved, axis=1), axis=-1).sum(axis=1)
    chord = np.linalg.norm(first - end, axis=-1)
    errors = [
        float(np.sqrt(((euler_endpoints(data, start, n, sigma_start) - end) ** 2).sum(-1).mean())) for n in EULER_STEPS
    ]
    return FlowPaths(
        sigmas=sigmas,
        curved=curved,
        straight=straight,
        start=first,
        end=end,
        eps=eps,
        gap=gap,
        length_ratio=length / np.maximum(chord, 1e-12),
        euler_steps=np.asarray(EULER_STEPS, dtype=np.int64),
        euler_error=np.asarray(errors),
    )


def to_flow_coordinates(x_t: torch.Tensor, alphas_cumprod: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A run's VP states x_t ([S, B, D], at ᾱ per step [S]) on the flow path: (σ [S], x_σ = c(σ) x_t [S, B, D])."""
    sigma = sigma_of_alpha_cumprod(torch.as_tensor(np.asarray(alphas_cumprod, dtype=np.float64)))  # [S]
    scale = path_scale(sigma).reshape(-1, *([1] * (x_t.ndim - 1)))
    return sigma.numpy(), (x_t.double() * scale).numpy()
