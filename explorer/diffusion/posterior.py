"""The forward marginal q(x_t | x_0) and the forward-process posterior q(x_{t−1} | x_t, x_0).

Notation (Ho et al. 2020, eqs. 4, 6, 7; tables named as in `explorer.diffusion.schedules`):

    code name                  symbol                                   equation
    q_sample                   x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε,  ε ~ N(0, I)     eq. 4
    posterior mean             μ̃_t = c₀ x₀ + c_t x_t                          eq. 7
      c₀ = posterior_mean_coef_x0   √ᾱ_{t−1} β_t / (1−ᾱ_t)
      c_t = posterior_mean_coef_xt  √α_t (1−ᾱ_{t−1}) / (1−ᾱ_t)
    posterior variance         β̃_t = (1−ᾱ_{t−1}) β_t / (1−ᾱ_t)                eq. 7 (β̃_1 = 0)
    reverse variance choice    σ_t² ∈ {β̃_t ("fixed_small"), β_t ("fixed_large"),
                               exp(f log β_t + (1−f) log β̃_t) ("learned_range", Nichol & Dhariwal eq. 15)}

`timestep` is diffusers' 0-based timestep (see `indexing`): an int, or a [B] tensor of per-sample
timesteps. Tensors are [B, ...] of any rank; results keep the shape and device of x₀ / x_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explorer.diffusion.schedules import Schedule
from explorer.diffusion.tensors import TimestepLike, gather
from explorer.validation import Mode


class VarianceType(Mode, field="variance"):
    """Which variance the reverse step p_θ(x_{t−1}|x_t) uses; values are diffusers' strings."""

    FIXED_SMALL = "fixed_small"
    FIXED_LARGE = "fixed_large"
    LEARNED_RANGE = "learned_range"


@dataclass(frozen=True)
class Posterior:
    """q(x_{t−1} | x_t, x_0) = N(mean, variance · I) for a batch.

    mean: [B, ...]; variance, log_variance_clipped: broadcastable to [B, ...] ([B, 1, ..., 1]).
    from_x0 + from_xt == mean: the two weighted parts of μ̃_t, for display.
    """

    mean: torch.Tensor
    variance: torch.Tensor
    log_variance_clipped: torch.Tensor
    from_x0: torch.Tensor
    from_xt: torch.Tensor


def _noise_like(x: torch.Tensor, noise: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
    if noise is not None:
        if noise.shape != x.shape:
            raise ValueError(f"noise {tuple(noise.shape)} must have the shape of the sample {tuple(x.shape)}")
        return noise
    if generator is None:
        raise ValueError("pass either `noise` or a seeded `generator`: randomness is never implicit")
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device).to(x.device)


def q_sample(
    schedule: Schedule,
    x0: torch.Tensor,
    timestep: TimestepLike,
    noise: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_0) = N(√ᾱ_t x₀, (1−ᾱ_t) I) with the given noise (or noise from `generator`).

    x0: [B, ...] → x_t: [B, ...].
    """
    noise = _noise_like(x0, noise, generator)
    return (
        gather(schedule.sqrt_alphas_cumprod, timestep, x0) * x0
        + gather(schedule.sqrt_one_minus_alphas_cumprod, timestep, x0) * noise
    )


def q_posterior(schedule: Schedule, x0: torch.Tensor, x_t: torch.Tensor, timestep: TimestepLike) -> Posterior:
    """Mean, variance and clipped log-variance of q(x_{t−1} | x_t, x_0) (eq. 7). x0, x_t: [B, ...]."""
    if x0.shape != x_t.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and x_t {tuple(x_t.shape)} must have the same shape")
    from_x0 = gather(schedule.posterior_mean_coef_x0, timestep, x_t) * x0
    from_xt = gather(schedule.posterior_mean_coef_xt, timestep, x_t) * x_t
    return Posterior(
        mean=from_x0 + from_xt,
        variance=gather(schedule.posterior_variance, timestep, x_t),
        log_variance_clipped=gather(schedule.posterior_log_variance_clipped, timestep, x_t),
        from_x0=from_x0,
        from_xt=from_xt,
    )


def q_posterior_sample(
    schedule: Schedule,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    timestep: TimestepLike,
    noise: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw x_{t−1} ~ q(x_{t−1} | x_t, x_0) = μ̃_t + √β̃_t z. Returns [B, ...]; exact μ̃ at t = 1."""
    posterior = q_posterior(schedule, x0, x_t, timestep)
    return posterior.mean + posterior.variance.sqrt() * _noise_like(x_t, noise, generator)


def reverse_log_variance(
    schedule: Schedule,
    timestep: TimestepLike,
    variance: str | VarianceType,
    like: torch.Tensor,
    variance_values: torch.Tensor | None = None,
) -> torch.Tensor:
    """log σ_t² of the reverse step for each variance choice, broadcastable to `like` ([B, ...]).

    `learned_range` interpolates between log β̃_t (clipped) and log β_t with f = (variance_values + 1)/2,
    variance_values being the model's extra output channels in [−1, 1] ([B, ...]). log β̃_1 = −inf for
    `fixed_small` at t = 1: that step adds no noise.
    """
    variance = VarianceType.parse(variance)
    log_beta = gather(schedule.betas, timestep, like).log()
    if variance is VarianceType.FIXED_LARGE:
        return log_beta
    if variance is VarianceType.FIXED_SMALL:
        return gather(schedule.posterior_variance, timestep, like).log()
    if variance_values is None:
        raise ValueError("variance 'learned_range' needs a model that predicts its variance (2×C output channels)")
    fraction = (variance_values + 1) / 2
    return fraction * log_beta + (1 - fraction) * gather(schedule.posterior_log_variance_clipped, timestep, like)
