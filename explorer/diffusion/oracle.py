"""Exact answers for a finite data set: the optimal denoiser and the true reverse q(x_{t−1} | x_t).

If the data distribution is the empirical one, p(x₀) = (1/N) Σ_n δ(x₀ − x_n), everything the network
approximates has a closed form (Ho et al. 2020 eqs. 4 and 7 combined with Bayes' rule):

    code name      symbol                                     meaning
    data[n]        x_n                                        the N data points, [N, D] (flattened samples)
    weights[b, n]  w_n(x_t) = softmax_n(−‖x_t − √ᾱ_t x_n‖² / (2(1−ᾱ_t)))   p(x₀ = x_n | x_t)
    x0_hat         E[x₀ | x_t] = Σ_n w_n x_n                  the optimal (MSE) x₀-prediction
    means[b, n]    μ̃_t(x_n, x_t)                             posterior mean given x₀ = x_n (eq. 7)
    variance       β̃_t                                        shared by every component
    q(x_{t−1}|x_t) = Σ_n w_n(x_t) N(μ̃_t(x_n, x_t), β̃_t I)    the "intractable" reverse, exact here
    reverse_between                                           the same between any two levels s ≤ t, or DDIM's
                                                              Σ_n w_n q_σ(x_s | x_t, x_n) (Song et al. 2021 eq. 12)

`reverse_densities` evaluates, on a grid around one 2-D point x_t, the true mixture q(x_s | x_t), the single
Gaussian q(x_s | x_t, x₀) and a model's Gaussian step p_θ(x_s | x_t) = N(μ̃(x̂₀, x_t), β̃): what the Posterior
view draws side by side.

The denoiser trained with MSE converges to E[x₀ | x_t] of its training set; as t → 1 the weights
collapse onto the nearest data point, which is why the exact optimum can only copy its data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from explorer.diffusion.denoiser import Denoiser, DenoiserOutput
from explorer.diffusion.indexing import previous_t
from explorer.diffusion.parameterization import Prediction, convert
from explorer.diffusion.posterior import VarianceType, q_posterior
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.tensors import TimestepLike, as_timesteps, gather

MAX_ORACLE_POINTS = 100_000


def _flatten(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).double()  # [B, D]


def posterior_weights(data: torch.Tensor, x_t: torch.Tensor, alpha_cumprod: torch.Tensor) -> torch.Tensor:
    """w[b, n] = p(x₀ = x_n | x_t[b]) under the empirical data distribution.

    data: [N, D]; x_t: [B, D]; alpha_cumprod: [B] (ᾱ of each sample's timestep). Returns float64 [B, N].
    """
    a = alpha_cumprod.double().reshape(-1, 1)  # [B, 1]
    x, points = x_t.double(), data.double()
    # ‖x_t − √ᾱ x_n‖² expanded, so memory is O(B·N) rather than O(B·N·D); float64 keeps the logits exact
    # to ~1e-9 even at t = 1, where 1 − ᾱ ≈ 1e-4.
    squared = (x**2).sum(-1, keepdim=True) - 2 * a.sqrt() * (x @ points.T) + a * (points**2).sum(-1)[None, :]
    logits = -squared.clamp_min(0) / (2 * (1 - a))  # [B, N]
    return torch.softmax(logits, dim=-1)


class OptimalDenoiser(Denoiser):
    """E[x₀ | x_t] of a finite data set, usable anywhere a trained denoiser is.

    data: [N, *sample_shape]; output in `prediction` space (x₀ by default). No parameters, no training.
    """

    def __init__(
        self,
        data: torch.Tensor,
        schedule: Schedule,
        prediction: str | Prediction = Prediction.SAMPLE,
        name: str = "oracle",
    ) -> None:
        if data.ndim < 2 or data.shape[0] < 1 or data.shape[0] > MAX_ORACLE_POINTS:
            raise ValueError(
                f"oracle data must be [N, ...] with N in [1, {MAX_ORACLE_POINTS}]; got {tuple(data.shape)}"
            )
        self.data = data.detach().to("cpu", torch.float64)
        self.name = name
        self.prediction = Prediction.parse(prediction)
        self.schedule = schedule
        self.sample_shape = tuple(data.shape[1:])
        self.variance_type = VarianceType.FIXED_SMALL
        self.description = f"exact E[x₀|x_t] of {data.shape[0]} data points"

    def predict(self, x_t: torch.Tensor, timestep: TimestepLike) -> DenoiserOutput:
        steps = as_timesteps(timestep, self.schedule.num_train_timesteps).expand(x_t.shape[0])
        a = gather(self.schedule.alphas_cumprod, steps, x_t.double()).reshape(-1)  # [B]
        weights = posterior_weights(_flatten(self.data), _flatten(x_t), a)  # [B, N]
        x0 = (weights @ _flatten(self.data)).reshape(x_t.shape)  # [B, *shape]
        out = convert(x0, Prediction.SAMPLE, self.prediction, x_t.double(), a)
        return DenoiserOutput(out.to(x_t.dtype if x_t.dtype.is_floating_point else torch.float32))


@dataclass(frozen=True)
class ReverseMixture:
    """q(x_s | x_t) = Σ_n weights[b, n] N(means[b, n], variance I) for each of B points x_t.

    weights: float64 [B, N]; means: float64 [B, N, D]; variance: β̃ of the jump t → s (0 when s is x₀ itself or
    s = t; DDIM's σ² = η² β̃).
    """

    weights: torch.Tensor
    means: torch.Tensor
    variance: float
    timestep: int
    prev_timestep: int

    def mean(self) -> torch.Tensor:
        """E[x_s | x_t], [B, D]."""
        return (self.weights[..., None] * self.means).sum(dim=1)

    def covariance(self) -> torch.Tensor:
        """Cov[x_s | x_t] = β̃ I + the spread of the component means, [B, D, D]."""
        centred = self.means - self.mean()[:, None, :]
        spread = torch.einsum("bn,bni,bnj->bij", self.weights, centred, centred)
        return spread + self.variance * torch.eye(self.means.shape[-1], dtype=spread.dtype)


def true_reverse(
    data: torch.Tensor,
    schedule: Schedule,
    x_t: torch.Tensor,
    timestep: int,
    prev_timestep: int | None = None,
) -> ReverseMixture:
    """The exact reverse q(x_s | x_t) of a finite data set, s = prev_timestep (default t − 1, 0-based).

    data: [N, D]; x_t: [B, D]. A larger jump (smaller s) shows the multi-modal mixture; s = t − 1 at a small
    β_t is almost Gaussian. prev_timestep = −1 jumps to x₀: the components are the data points themselves.
    """
    t = int(as_timesteps(timestep, schedule.num_train_timesteps))
    s = previous_t(t) if prev_timestep is None else int(prev_timestep)
    if not -1 <= s < t:
        raise ValueError(
            f"prev_timestep must be an integer in [-1, {previous_t(t)}] (below timestep {t}); got {prev_timestep}"
        )
    return reverse_between(data, schedule, x_t, t, s)


def reverse_between(
    data: torch.Tensor,
    schedule: Schedule,
    x_t: torch.Tensor,
    timestep: int,
    prev_timestep: int,
    *,
    eta: float | None = None,
) -> ReverseMixture:
    """A reverse step from timestep t to s = prev_timestep (0-based, −1 ≤ s ≤ t) mixed over the exact weights w_n(x_t).

    eta None: the exact reverse q(x_s | x_t) = Σ_n w_n q(x_s | x_t, x_n), what a DDPM step approximates.
    eta ∈ [0, 1]: DDIM's non-Markov reverse (Song et al. 2021, eq. 12) with x̂₀ = x_n in each component,
        q_σ(x_s | x_t, x_n) = N(√ᾱ_s x_n + √(1 − ᾱ_s − σ²) (x_t − √ᾱ_t x_n)/√(1 − ᾱ_t), σ² I),  σ = η β̃^½,
    whose mean is the DDIM step of the exact denoiser (the step is linear in x̂₀ = Σ_n w_n x_n).
    s = t (a corrector call that lands on its own noise level) is the point mass at x_t; s = −1 lands on the data.
    data: [N, D]; x_t: [B, D]; the variance is 0 where the step adds no noise.
    """
    total = schedule.num_train_timesteps
    t = int(as_timesteps(timestep, total))
    s = int(prev_timestep)
    if not -1 <= s <= t:
        raise ValueError(f"prev_timestep must be an integer in [-1, {t}] (at most timestep {t}); got {prev_timestep}")
    if eta is not None and not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be a number in [0, 1]; got {eta}")
    points = _flatten(data)  # [N, D]
    x = _flatten(x_t)  # [B, D]
    a_t = float(schedule.alphas_cumprod[t])
    weights = posterior_weights(points, x, torch.full((x.shape[0],), a_t, dtype=torch.float64))
    if s == t:  # no change of noise level: x_s = x_t under every component
        return ReverseMixture(weights, x[:, None, :].expand(-1, points.shape[0], -1).clone(), 0.0, t, s)
    if s == -1:
        a_s, variance = 1.0, 0.0
    else:
        jump = schedule.respace([s, t])  # index 1 is the jump t → s
        a_s, variance = float(jump.alphas_cumprod[0]), float(jump.posterior_variance[1])
    if eta is None:
        if s == -1:
            means = points[None].expand(x.shape[0], -1, -1).clone()
        else:
            c0, ct = float(jump.posterior_mean_coef_x0[1]), float(jump.posterior_mean_coef_xt[1])
            means = c0 * points[None, :, :] + ct * x[:, None, :]  # [B, N, D]
        return ReverseMixture(weights, means, variance, t, s)
    sigma2 = eta * eta * variance
    direction = math.sqrt(max(1.0 - a_s - sigma2, 0.0))
    eps = (x[:, None, :] - math.sqrt(a_t) * points[None, :, :]) / math.sqrt(1.0 - a_t)  # [B, N, D]: ε of each x_n
    means = math.sqrt(a_s) * points[None, :, :] + direction * eps
    return ReverseMixture(weights, means, sigma2, t, s)


def mixture_density(mixture: ReverseMixture, grid: torch.Tensor) -> torch.Tensor:
    """Density of each of the B mixtures at G points: grid [G, D] → float64 [B, G] (needs variance > 0)."""
    if mixture.variance <= 0:
        raise ValueError("the density of a jump to x₀ is a set of point masses; choose prev_timestep ≥ 0")
    d = mixture.means.shape[-1]
    var = mixture.variance
    sq = ((grid.double()[None, None, :, :] - mixture.means[:, :, None, :]) ** 2).sum(-1)  # [B, N, G]
    log_components = -sq / (2 * var) - 0.5 * d * math.log(2 * math.pi * var)
    return torch.einsum("bn,bng->bg", mixture.weights, log_components.exp())


def grid_density(mixture: ReverseMixture, xs: np.ndarray, ys: np.ndarray) -> torch.Tensor:
    """Density of each of the B 2-D mixtures on the regular grid xs [Gx] × ys [Gy]: float64 [B, Gy, Gx] (rows y).

    The components are isotropic, N(x; m, v I) = N(x₁; m₁, v) N(x₂; m₂, v), so the sum over the N components is one
    matrix product per mixture, [Gy, N] @ [N, Gx], instead of a [B, N, Gy·Gx] tensor (`mixture_density`).
    """
    if mixture.variance <= 0:
        raise ValueError("the density of a jump to x₀ is a set of point masses; choose prev_timestep ≥ 0")
    if mixture.means.shape[-1] != 2:
        raise ValueError(f"grid_density draws 2-D mixtures; got {mixture.means.shape[-1]}-D means")
    var = mixture.variance
    norm = 1.0 / math.sqrt(2 * math.pi * var)
    x = torch.as_tensor(np.asarray(xs), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(ys), dtype=torch.float64)
    along_x = torch.exp(-((x[None, None, :] - mixture.means[..., :1]) ** 2) / (2 * var)) * norm  # [B, N, Gx]
    along_y = torch.exp(-((y[None, None, :] - mixture.means[..., 1:]) ** 2) / (2 * var)) * norm  # [B, N, Gy]
    return (along_y * mixture.weights[..., None]).transpose(1, 2) @ along_x  # [B, Gy, Gx]


DENSITY_GRID = 90  # points per axis of the density grid
WEIGHT_FLOOR = 1e-4  # mixture components below this share of the largest weight do not shape the grid


@dataclass(frozen=True)
class ReverseDensities:
    """Densities of x_s given one 2-D x_t on a regular grid: xs [G], ys [G]; each density float64 [G, G] (rows y).

    true: the exact mixture q(x_s | x_t); given_x0: q(x_s | x_t, x₀); model: N(μ̃(x̂₀, x_t), β̃) when a model's
    x̂₀ was given, else None. variance: β̃ of the jump t → s, shared by every Gaussian here.
    """

    xs: np.ndarray
    ys: np.ndarray
    true: np.ndarray
    given_x0: np.ndarray
    model: np.ndarray | None
    variance: float


def _isotropic(grid: torch.Tensor, mean: torch.Tensor, variance: float) -> torch.Tensor:
    """N(x; mean, variance·I) at each row of grid [G, D]: float64 [G]."""
    d = grid.shape[1]
    squared = ((grid - mean[None, :]) ** 2).sum(dim=1)
    return torch.exp(-0.5 * squared / variance) / (2 * math.pi * variance) ** (d / 2)


def reverse_densities(
    data: torch.Tensor,
    schedule: Schedule,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    timestep: int,
    prev_timestep: int,
    *,
    model_x0: torch.Tensor | None = None,
    grid_points: int = DENSITY_GRID,
) -> ReverseDensities:
    """The three reverse densities of the jump timestep → prev_timestep (0-based, prev ≥ 0) for one point.

    data: [N, 2]; x0, x_t and model_x0: [1, 2]. The grid covers every component that carries weight, μ̃, x₀ and
    x_t, with four standard deviations to spare.
    """
    if not 0 <= prev_timestep < timestep:
        raise ValueError(f"prev_timestep must be an integer in [0, {previous_t(timestep)}]; got {prev_timestep}")
    x_t, x0 = x_t.to(torch.float64), x0.to(torch.float64)
    mixture = true_reverse(data.to(torch.float64), schedule, x_t, timestep, prev_timestep=prev_timestep)
    jump = schedule.respace([prev_timestep, timestep])  # its index 1 is the jump t → s, as in the oracle
    given = q_posterior(jump, x0, x_t, 1).mean[0]  # [2]
    weights = mixture.weights[0]
    heavy = mixture.means[0][weights > WEIGHT_FLOOR * weights.max()]  # [K, 2]: the components that matter
    centres = torch.cat([heavy, given[None], x0, x_t]).numpy()
    spread = 4 * max(math.sqrt(mixture.variance), 0.02)
    low, high = centres.min(axis=0) - spread, centres.max(axis=0) + spread
    xs, ys = np.linspace(low[0], high[0], grid_points), np.linspace(low[1], high[1], grid_points)
    grid = torch.from_numpy(np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2))  # [G², 2], row-major in y
    shape = (grid_points, grid_points)
    model = None
    if model_x0 is not None:
        model_mean = q_posterior(jump, model_x0.to(torch.float64), x_t, 1).mean[0]
        model = _isotropic(grid, model_mean, mixture.variance).reshape(shape).numpy()
    return ReverseDensities(
        xs=xs,
        ys=ys,
        true=grid_density(mixture, xs, ys)[0].numpy(),
        given_x0=_isotropic(grid, given, mixture.variance).reshape(shape).numpy(),
        model=model,
        variance=mixture.variance,
    )
