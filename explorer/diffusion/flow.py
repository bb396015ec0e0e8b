"""Flow matching (rectified flow): the path, its σ schedules, the velocity and its exact relation to ε, x₀ and v.

The straight path between data and noise used by SD3, FLUX and most models since 2024 (Liu et al. 2023,
"Flow straight and fast"; Esser et al. 2024, "Scaling rectified flow transformers", §2 and §5.3.2):

    code name     symbol     meaning
    sigma         σ          the noise level, in [0, 1]: σ = 0 is data, σ = 1 is pure noise
    x_sigma       x_σ        (1 − σ) x₀ + σ ε, [B, ...]
    u             u          ε − x₀ = dx_σ/dσ: the velocity a flow model predicts ("flow"; not the v of VP models)
    x0, eps       x₀, ε      the clean sample and the unit Gaussian that made x_σ
    v             v          the VP v (Salimans & Ho 2022) of the same point at equal SNR (below)
    c             c(σ)       √((1 − σ)² + σ²), the scale between the two paths
    shift         s          σ' = s σ / (1 + (s − 1) σ)   (SD3: s = 3)
    mu            μ          FLUX's dynamic shift σ' = e^μ / (e^μ + (1/σ − 1)), μ linear in the image sequence length

The same point on the variance-preserving path, at equal signal-to-noise ratio:

    SNR(σ) = (1 − σ)² / σ²     ᾱ(σ) = (1 − σ)² / c²     x_VP = x_σ / c     σ(ᾱ) = √(1−ᾱ) / (√ᾱ + √(1−ᾱ))

so a VP model evaluated at x_σ / c (at the timestep of that ᾱ) and a flow model evaluated at x_σ see the same
information, and every prediction converts to every other. The conversions below are inverse pairs; those that
divide by σ (x₀ → u) or by 1 − σ (ε → u) refuse σ = 0 or σ = 1 instead of returning inf. All maths is done in the
promoted dtype of the inputs (at least float32; float64 stays float64).

Sampling goes from σ = 1 to σ = 0. The deterministic Euler step is x_{σ'} = x_σ + (σ' − σ) û; the stochastic one
(diffusers' `stochastic_sampling`) re-noises the predicted x̂₀ = x_σ − σ û: x_{σ'} = (1 − σ') x̂₀ + σ' z.
`inference_sigmas` reproduces `FlowMatchEulerDiscreteScheduler.set_timesteps` (timesteps are σ × T, floats).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from explorer.diffusion.oracle import posterior_weights
from explorer.diffusion.tensors import append_dims
from explorer.validation import Mode

Sigma = float | torch.Tensor

# FLUX.1's scheduler config: μ grows linearly from base_shift at 256 tokens to max_shift at 4096 tokens.
BASE_SHIFT, MAX_SHIFT = 0.5, 1.15
BASE_IMAGE_SEQ_LEN, MAX_IMAGE_SEQ_LEN = 256, 4096


class FlowTarget(Mode, field="flow target"):
    """What a prediction at x_σ means: the flow velocity u, or one of the VP quantities at equal SNR."""

    FLOW = "flow"
    EPSILON = "epsilon"
    SAMPLE = "sample"
    V_PREDICTION = "v_prediction"


# --- the path and its equal-SNR twin on the variance-preserving path ------------------------------------------


def _sigma(sigma: Sigma, like: torch.Tensor) -> torch.Tensor:
    """σ as a tensor broadcasting against `like` ([B] → [B, 1, …]), checked to lie in [0, 1]."""
    dtype = torch.promote_types(like.dtype, torch.float32)
    sig = torch.as_tensor(sigma, dtype=torch.float64, device=like.device)
    if torch.isnan(sig).any() or (sig < 0).any() or (sig > 1).any():
        raise ValueError("sigma (σ) must lie in [0, 1]")
    return append_dims(sig, like.ndim).to(dtype)


def _refuse(where: torch.Tensor, message: str) -> None:
    if where.any():
        raise ValueError(message)


def path_point(x0: torch.Tensor, eps: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """x_σ = (1 − σ) x₀ + σ ε. x0, eps: [B, ...]; sigma a float or [B]."""
    sig = _sigma(sigma, x0)
    return (1 - sig) * x0 + sig * eps


def path_scale(sigma: Sigma) -> torch.Tensor:
    """c(σ) = √((1 − σ)² + σ²) in float64: x_VP = x_σ / c."""
    sig = torch.as_tensor(sigma, dtype=torch.float64)
    return ((1 - sig) ** 2 + sig**2).sqrt()


def alpha_cumprod_of_sigma(sigma: Sigma) -> torch.Tensor:
    """ᾱ(σ) = (1 − σ)² / ((1 − σ)² + σ²), the VP ᾱ of equal SNR, float64."""
    sig = torch.as_tensor(sigma, dtype=torch.float64)
    return (1 - sig) ** 2 / ((1 - sig) ** 2 + sig**2)


def sigma_of_alpha_cumprod(alpha_cumprod: Sigma) -> torch.Tensor:
    """σ(ᾱ) = √(1 − ᾱ) / (√ᾱ + √(1 − ᾱ)), the inverse of `alpha_cumprod_of_sigma`, float64."""
    a = torch.as_tensor(alpha_cumprod, dtype=torch.float64)
    if torch.isnan(a).any() or (a < 0).any() or (a > 1).any():
        raise ValueError("alpha_cumprod (ᾱ) must lie in [0, 1]")
    return (1 - a).sqrt() / (a.sqrt() + (1 - a).sqrt())


def to_variance_preserving(x_sigma: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """x_VP = x_σ / c(σ): the same point on the VP path (ᾱ = ᾱ(σ)). Inverse of `from_variance_preserving`."""
    return x_sigma / _sigma(path_scale(sigma), x_sigma)


def from_variance_preserving(x_vp: torch.Tensor, alpha_cumprod: Sigma) -> torch.Tensor:
    """x_σ = c(σ(ᾱ)) x_VP: a VP point on the flow path of equal SNR. Inverse of `to_variance_preserving`."""
    scale = path_scale(sigma_of_alpha_cumprod(alpha_cumprod))
    return x_vp * append_dims(scale, x_vp.ndim).to(torch.promote_types(x_vp.dtype, torch.float32))


# --- conversions: inverse pairs --------------------------------------------------------------------------------

_AT_ZERO = "{target} is undefined at σ = 0 (no noise): x_σ equals x₀, so the velocity is not determined there"
_AT_ONE = "{target} is undefined at σ = 1 (pure noise): x_σ equals ε and carries no information about x₀"


def x0_from_u(x_sigma: torch.Tensor, u: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """x₀ = x_σ − σ u. Inverse of `u_from_x0`."""
    return x_sigma - _sigma(sigma, x_sigma) * u


def u_from_x0(x_sigma: torch.Tensor, x0: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """u = (x_σ − x₀) / σ. Inverse of `x0_from_u`."""
    sig = _sigma(sigma, x_sigma)
    _refuse(sig == 0, _AT_ZERO.format(target="u from x₀"))
    return (x_sigma - x0) / sig


def eps_from_u(x_sigma: torch.Tensor, u: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """ε = x_σ + (1 − σ) u. Inverse of `u_from_eps`."""
    return x_sigma + (1 - _sigma(sigma, x_sigma)) * u


def u_from_eps(x_sigma: torch.Tensor, eps: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """u = (ε − x_σ) / (1 − σ). Inverse of `eps_from_u`."""
    sig = _sigma(sigma, x_sigma)
    _refuse(sig == 1, _AT_ONE.format(target="u from ε"))
    return (eps - x_sigma) / (1 - sig)


def v_from_u(x_sigma: torch.Tensor, u: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """v = ((1 − 2σ) x_σ + c² u) / c, the VP v at equal SNR (v = √ᾱ ε − √(1−ᾱ) x₀). Inverse of `u_from_v`."""
    sig = _sigma(sigma, x_sigma)
    c = ((1 - sig) ** 2 + sig**2).sqrt()
    return ((1 - 2 * sig) * x_sigma + c**2 * u) / c


def u_from_v(x_sigma: torch.Tensor, v: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """u = (c v − (1 − 2σ) x_σ) / c². Inverse of `v_from_u`; defined everywhere (c ≥ 1/√2)."""
    sig = _sigma(sigma, x_sigma)
    c = ((1 - sig) ** 2 + sig**2).sqrt()
    return (c * v - (1 - 2 * sig) * x_sigma) / c**2


def u_from_x0_eps(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """u = ε − x₀: the flow-matching training target when both are known."""
    return eps - x0


Converter = Callable[[torch.Tensor, torch.Tensor, Sigma], torch.Tensor]

_FROM_U: dict[FlowTarget, Converter] = {
    FlowTarget.SAMPLE: x0_from_u,
    FlowTarget.EPSILON: eps_from_u,
    FlowTarget.V_PREDICTION: v_from_u,
}
_TO_U: dict[FlowTarget, Converter] = {
    FlowTarget.SAMPLE: u_from_x0,
    FlowTarget.EPSILON: u_from_eps,
    FlowTarget.V_PREDICTION: u_from_v,
}


def convert_flow(
    output: torch.Tensor, source: str | FlowTarget, target: str | FlowTarget, x_sigma: torch.Tensor, sigma: Sigma
) -> torch.Tensor:
    """Turn a prediction of kind `source` at the flow point x_σ into the prediction of kind `target`.

    Every pair goes through u (one table of inverse pairs). ε, x₀ and v are those of the same sample at equal SNR,
    so they are also what a VP model at x_VP = x_σ / c would predict. output, x_sigma: [B, ...]; sigma: float or [B].
    """
    source, target = FlowTarget.parse(source), FlowTarget.parse(target)
    if output.shape != x_sigma.shape:
        raise ValueError(f"output {tuple(output.shape)} and x_σ {tuple(x_sigma.shape)} must have the same shape")
    u = output if source is FlowTarget.FLOW else _TO_U[source](x_sigma, output, sigma)
    if target is FlowTarget.FLOW:
        return u.to(torch.promote_types(u.dtype, torch.float32), copy=True)
    return _FROM_U[target](x_sigma, u, sigma)


# --- σ schedules: static shift (SD3), dynamic shift (FLUX), and diffusers' set_timesteps -----------------------


def shift_sigmas(sigmas: np.ndarray, shift: float) -> np.ndarray:
    """σ' = s σ / (1 + (s − 1) σ): more steps at high noise for s > 1 (SD3 uses s = 3)."""
    if not (math.isfinite(shift) and shift > 0):
        raise ValueError(f"shift must be a positive number; got {shift}")
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def dynamic_shift_mu(
    image_seq_len: int,
    base_seq_len: int = BASE_IMAGE_SEQ_LEN,
    max_seq_len: int = MAX_IMAGE_SEQ_LEN,
    base_shift: float = BASE_SHIFT,
    max_shift: float = MAX_SHIFT,
) -> float:
    """μ for FLUX's dynamic shift: linear in the packed image sequence length (base at 256, max at 4096 tokens)."""
    if image_seq_len < 1:
        raise ValueError(f"image sequence length must be at least 1; got {image_seq_len}")
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return base_shift + slope * (image_seq_len - base_seq_len)


def dynamic_shift_sigmas(sigmas: np.ndarray, mu: float) -> np.ndarray:
    """σ' = e^μ / (e^μ + (1/σ − 1)): the exponential time shift (equal to `shift_sigmas` with s = e^μ)."""
    return math.exp(mu) / (math.exp(mu) + (1 / sigmas - 1))


@dataclass(frozen=True)
class FlowSchedule:
    """The σ grid a flow sampler visits, as diffusers' FlowMatchEulerDiscreteScheduler builds it.

    sigmas: float64 [S + 1], from near 1 down to the terminal 0; timesteps: [S] = σ × T, the model's input.
    """

    sigmas: np.ndarray
    timesteps: np.ndarray
    num_train_timesteps: int


def inference_sigmas(
    num_inference_steps: int,
    *,
    num_train_timesteps: int = 1000,
    shift: float = 1.0,
    mu: float | None = None,
    sigmas: np.ndarray | None = None,
) -> FlowSchedule:
    """The σ grid of `FlowMatchEulerDiscreteScheduler(shift=…).set_timesteps(n, sigmas=…, mu=…)`.

    With `mu` the dynamic (FLUX) shift is used, else the static `shift`. Without `sigmas` the grid is diffusers'
    default: evenly spaced timesteps between the training grid's (already shifted) largest and smallest σ, then
    shifted (diffusers shifts the smallest σ twice; this reproduces it). FLUX's pipeline passes
    sigmas = linspace(1, 1/n, n).
    """
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be at least 1; got {num_inference_steps}")
    T = num_train_timesteps
    if sigmas is None:
        train = np.arange(T, 0, -1, dtype=np.float64) / T  # σ of the training grid, T/T … 1/T
        if mu is None:
            train = shift_sigmas(train, shift)
        sigmas = np.linspace(train[0] * T, train[-1] * T, num_inference_steps) / T
    sigmas = np.asarray(sigmas, dtype=np.float64)
    if len(sigmas) != num_inference_steps:
        raise ValueError(f"sigmas must hold num_inference_steps = {num_inference_steps} values; got {len(sigmas)}")
    sigmas = dynamic_shift_sigmas(sigmas, mu) if mu is not None else shift_sigmas(sigmas, shift)
    return FlowSchedule(np.append(sigmas, 0.0), sigmas * T, T)


# --- one step of the sampler, and the exact velocity of a finite data set -----------------------------------------


def euler_step(x_sigma: torch.Tensor, u: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """x_{σ'} = x_σ + (σ' − σ) û: the deterministic flow Euler step (an ODE step, no noise)."""
    return x_sigma + (sigma_next - sigma) * u


def stochastic_step(
    x_sigma: torch.Tensor, u: torch.Tensor, sigma: float, sigma_next: float, noise: torch.Tensor
) -> torch.Tensor:
    """x_{σ'} = (1 − σ') x̂₀ + σ' z with x̂₀ = x_σ − σ û and fresh z: diffusers' `stochastic_sampling` step."""
    return (1 - sigma_next) * x0_from_u(x_sigma, u, sigma) + sigma_next * noise


def exact_velocity(data: torch.Tensor, x_sigma: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """u*(x_σ) = (x_σ − E[x₀ | x_σ]) / σ for the empirical distribution of `data`: what a perfect flow model predicts.

    E[x₀ | x_σ] is the VP posterior mean at x_VP = x_σ / c and ᾱ(σ) (equal SNR: the same weights w_n). The
    conditional velocities ε − x_n are straight lines; their posterior average u* is what bends the trajectories.
    data: [N, ...] with the sample shape of x_sigma [B, ...]; sigma in (0, 1], a float or [B]. Returns float64.
    """
    sig = torch.as_tensor(sigma, dtype=torch.float64).expand(x_sigma.shape[0])  # [B]
    _refuse(sig == 0, _AT_ZERO.format(target="the exact velocity"))
    flat = x_sigma.reshape(x_sigma.shape[0], -1).double()  # [B, D]
    points = data.reshape(data.shape[0], -1).double()  # [N, D]
    weights = posterior_weights(points, flat / path_scale(sig)[:, None], alpha_cumprod_of_sigma(sig))  # [B, N]
    x0_hat = weights @ points  # [B, D]
    return ((flat - x0_hat) / sig[:, None]).reshape(x_sigma.shape)
