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

The denoiser trained with MSE converges to E[x₀ | x_t] of its training set; as t → 1 the weights
collapse onto the nearest data point, which is why the exact optimum can only copy its data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from explorer.diffusion.denoiser import Denoiser, DenoiserOutput
from explorer.diffusion.parameterization import Prediction, convert
from explorer.diffusion.posterior import VarianceType
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

    weights: float64 [B, N]; means: float64 [B, N, D]; variance: β̃ of the jump t → s (0 when s is x₀ itself).
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
    total = schedule.num_train_timesteps
    t = int(as_timesteps(timestep, total))
    s = t - 1 if prev_timestep is None else int(prev_timestep)
    if not -1 <= s < t:
        raise ValueError(f"prev_timestep must be an integer in [-1, {t - 1}] (below timestep {t}); got {prev_timestep}")
    points = _flatten(data)  # [N, D]
    x = _flatten(x_t)  # [B, D]
    a_t = float(schedule.alphas_cumprod[t])
    weights = posterior_weights(points, x, torch.full((x.shape[0],), a_t, dtype=torch.float64))
    if s == -1:
        means = points[None].expand(x.shape[0], -1, -1).clone()
        return ReverseMixture(weights, means, 0.0, t, s)
    jump = schedule.respace([s, t])  # index 1 is the jump t → s
    c0, ct = float(jump.posterior_mean_coef_x0[1]), float(jump.posterior_mean_coef_xt[1])
    means = c0 * points[None, :, :] + ct * x[:, None, :]  # [B, N, D]
    return ReverseMixture(weights, means, float(jump.posterior_variance[1]), t, s)


def mixture_density(mixture: ReverseMixture, grid: torch.Tensor) -> torch.Tensor:
    """Density of each of the B mixtures at G points: grid [G, D] → float64 [B, G] (needs variance > 0)."""
    if mixture.variance <= 0:
        raise ValueError("the density of a jump to x₀ is a set of point masses; choose prev_timestep ≥ 0")
    d = mixture.means.shape[-1]
    var = mixture.variance
    sq = ((grid.double()[None, None, :, :] - mixture.means[:, :, None, :]) ** 2).sum(-1)  # [B, N, G]
    log_components = -sq / (2 * var) - 0.5 * d * math.log(2 * math.pi * var)
    return torch.einsum("bn,bng->bg", mixture.weights, log_components.exp())
