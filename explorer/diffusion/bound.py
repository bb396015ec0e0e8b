"""The variational bound on −log p_θ(x₀), every term of it, in nats and in bits per dimension.

Ho et al. 2020 eq. 5 (the notes' log p(x₀) ≥ −(L_T + Σ_t L_{t−1} + L₀)); names of the tables as in `schedules`:

    code name       symbol                                        equation / meaning
    prior[b]        L_T = KL(q(x_T|x₀) ‖ N(0, I))                  eq. 5; no network enters it
                        = ½ Σ_d [ᾱ_T x₀² − ᾱ_T − log(1 − ᾱ_T)]
    terms[i, b]     the term of the reverse step from paper t = i + 1 (index i is the 0-based timestep):
      i ≥ 1         L_{t−1} = KL(q(x_{t−1}|x_t,x₀) ‖ p_θ(x_{t−1}|x_t)),  x_t ~ q(x_t|x₀), one draw per t
                        = ½ Σ_d [log σ_t² − log β̃_t + β̃_t/σ_t² − 1 + (μ̃_t − μ_θ)²/σ_t²]      (closed form)
      i = 0         L₀ = −log p_θ(x₀|x₁)                           the decoder (eq. 13 for 8-bit pixels)
    μ̃_t, β̃_t       q(x_{t−1}|x_t,x₀) = N(μ̃_t(x₀, x_t), β̃_t I)     eq. 7 (`posterior.q_posterior`)
    μ_θ             μ̃_t(x̂₀, x_t), x̂₀ the model's (clipped to [−1, 1] when the checkpoint clips)
    σ_t²            the reverse variance: β̃_t (fixed_small, the lower choice), β_t (fixed_large, the upper),
                    or learned_range (Nichol & Dhariwal eq. 15; only for a model that outputs it)
    σ_1²            the decoder's variance at t = 1: β̃_2 for both fixed choices, as Ho et al.'s code (and
                    improved-diffusion's) sets it "to get a better decoder log likelihood" (β̃_1 = 0 itself is no
                    variance: posterior_log_variance_clipped)
    D               dimensions of one sample (256 for a 16×16 digit, 2 for a point)
    nats[b]         prior + Σ_i terms[i]: an upper bound on −log p_θ(x₀) (its expectation over the x_t draws is)
    bits/dim        nats / (D ln 2)

The decoder p_θ(x₀|x₁), by likelihood:
    DISCRETE_8BIT   Ho et al. eq. 13: each pixel is one of 256 levels of [−1, 1] (bin width 2/255; the two end bins
                    reach ±∞); p = Π_d ∫_bin N(x; μ_θ(x₁, 1)_d, σ_1²) dx. x₀ is first rounded to the 256 levels
                    (the digits are area-averaged, so not 8-bit themselves): the bound is that of the 8-bit image.
                    It is a probability, so L ≥ 0 and bits/dim are those papers report.
    CONTINUOUS      −log N(x₀; μ_θ(x₁, 1), σ_1² I): the 2-D points are real numbers, not quantized, so there are no
                    bins; the bound is on a density, −log p_θ(x₀) in nats per unit area, which can be negative and
                    depends on the data's units (here roughly unit std per axis). Compare models with it, not with
                    images.

Every timestep's x_t is drawn from (seed, timestep) by `noise.step_noise`, so a bound is a function of its seed and
any term can be recomputed; model calls are batched over many timesteps at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from explorer.diffusion.denoiser import as_denoiser
from explorer.diffusion.noise import step_noise
from explorer.diffusion.parameterization import Prediction, convert
from explorer.diffusion.posterior import VarianceType, q_posterior, q_sample, reverse_log_variance
from explorer.diffusion.tensors import append_dims, as_timesteps, gather
from explorer.validation import Mode, check_seed

LEVELS = 256  # 8-bit pixels
BIN_HALF_WIDTH = 1.0 / (LEVELS - 1)  # half the distance between two levels of [−1, 1]
MAX_CALL = 1024  # samples per model call: timesteps are grouped so that chunk × B stays near this
MAX_EXAMPLES = 4096


class Likelihood(Mode, field="likelihood"):
    """The decoder term L₀: a discretized Gaussian for 8-bit pictures, a Gaussian density for continuous data."""

    DISCRETE_8BIT = "discrete_8bit"
    CONTINUOUS = "continuous"

    @classmethod
    def for_shape(cls, sample_shape: Sequence[int]) -> Likelihood:
        """Pictures ([C, H, W]) are 8-bit; anything else (points [D]) is continuous."""
        return cls.DISCRETE_8BIT if len(sample_shape) == 3 else cls.CONTINUOUS


@dataclass(frozen=True)
class Bound:
    """The bound of one model on B examples x₀ (float64 numpy arrays, nats per example).

    terms: [T, B]; index i is the 0-based timestep, paper t = i + 1: terms[0] = L₀ (the decoder), terms[i ≥ 1] =
    L_{t−1}. prior: [B], L_T. dims: D per example. The totals below are per example ([B]) or their batch mean.
    """

    model: str
    variance: VarianceType
    likelihood: Likelihood
    dims: int
    seed: int
    terms: np.ndarray  # [T, B]
    prior: np.ndarray  # [B]

    @property
    def decoder(self) -> np.ndarray:
        """L₀ = −log p_θ(x₀|x₁) per example, [B]."""
        return self.terms[0]

    @property
    def nats(self) -> np.ndarray:
        """L_T + Σ_{t≥2} L_{t−1} + L₀ per example, [B]."""
        return self.prior + self.terms.sum(axis=0)

    @property
    def bits_per_dim(self) -> np.ndarray:
        """The bound per example in bits per dimension, [B]."""
        return self.nats / (self.dims * math.log(2))

    def mean_bits_per_dim(self) -> float:
        return float(self.bits_per_dim.mean())

    def standard_error(self) -> float:
        """Standard error of the batch mean of bits/dim (over examples; 0 for one example)."""
        count = self.bits_per_dim.size
        return float(self.bits_per_dim.std(ddof=1) / math.sqrt(count)) if count > 1 else 0.0

    def cumulative_bits_per_dim(self) -> np.ndarray:
        """[T]: batch mean of L₀ + Σ_{2 ≤ s ≤ t} L_{s−1} at index t − 1, in bits/dim; the last entry + L_T is the
        total."""
        return np.cumsum(self.terms.mean(axis=1)) / (self.dims * math.log(2))


def prior_kl(alpha_cumprod_last: float, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(N(√ᾱ_T x₀, (1−ᾱ_T) I) ‖ N(0, I)) per example: x0 [B, ...] → float64 [B]."""
    a = float(alpha_cumprod_last)
    per_dim = 0.5 * (a * x0.double() ** 2 - a - math.log1p(-a))
    return per_dim.reshape(x0.shape[0], -1).sum(dim=1)


def gaussian_kl(
    mean1: torch.Tensor, log_var1: torch.Tensor, mean2: torch.Tensor, log_var2: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean1, e^log_var1) ‖ N(mean2, e^log_var2)) elementwise, in nats (every argument broadcasts)."""
    squared = (mean1 - mean2) ** 2 * torch.exp(-log_var2)
    return 0.5 * (log_var2 - log_var1 + torch.exp(log_var1 - log_var2) - 1 + squared)


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − eˣ) for x ≤ 0, accurate at both ends (Mächler 2012)."""
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def log_normal_mass(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """log(Φ(high) − Φ(low)) for standardized edges low < high (±inf allowed), exact far into both tails: an interval
    above 0 is reflected below it, where Φ is small and `log_ndtr` keeps its digits."""
    flip = low > 0
    lo, hi = torch.where(flip, -high, low), torch.where(flip, -low, high)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + _log1mexp(log_lo - log_hi)


def quantize(x0: torch.Tensor) -> torch.Tensor:
    """x₀ in [−1, 1] rounded to the nearest of the 256 levels −1 + 2k/255, float64, same shape."""
    if x0.min() < -1 - BIN_HALF_WIDTH or x0.max() > 1 + BIN_HALF_WIDTH:
        raise ValueError(f"x0 must lie in [-1, 1] for the 8-bit likelihood; got [{x0.min():.4g}, {x0.max():.4g}]")
    levels = torch.round((x0.double().clamp(-1, 1) + 1) * (LEVELS - 1) / 2)
    return levels * 2 / (LEVELS - 1) - 1


def discretized_gaussian_nll(x0: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """−log P(x₀'s 8-bit bin) under N(mean, e^log_var) per element (Ho et al. eq. 13), float64; x0 on the levels."""
    std = torch.exp(0.5 * log_var)
    low = torch.where(x0 <= -1, -math.inf, (x0 - BIN_HALF_WIDTH - mean) / std)
    high = torch.where(x0 >= 1, math.inf, (x0 + BIN_HALF_WIDTH - mean) / std)
    return -log_normal_mass(low, high)


def gaussian_nll(x0: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """−log N(x₀; mean, e^log_var) per element (a density, in nats), float64."""
    return 0.5 * (math.log(2 * math.pi) + log_var + (x0 - mean) ** 2 * torch.exp(-log_var))


def _model_log_variance(schedule, timesteps, variance, like, variance_values) -> torch.Tensor:
    """log σ_t² per sample (broadcastable to `like`); at t = 1 both fixed choices use log β̃_2 (Ho et al.'s code)."""
    if variance is VarianceType.LEARNED_RANGE:
        return reverse_log_variance(schedule, timesteps, variance, like, variance_values)
    clipped = gather(schedule.posterior_log_variance_clipped, timesteps, like)  # log β̃_t, log β̃_2 at t = 1
    if variance is VarianceType.FIXED_SMALL:
        return clipped
    first = append_dims(as_timesteps(timesteps, schedule.num_train_timesteps) == 0, like.ndim)  # t = 1
    return torch.where(first, clipped, gather(schedule.betas, timesteps, like).log())


def bounds(
    model,
    x0: torch.Tensor,
    *,
    seed: int = 0,
    variances: Sequence[str | VarianceType] = (VarianceType.FIXED_SMALL, VarianceType.FIXED_LARGE),
    likelihood: str | Likelihood | None = None,
    clip_sample: bool | None = None,
) -> tuple[Bound, ...]:
    """The bound for each variance choice, on the same x_t draws (one model pass over all T timesteps).

    model: a denoiser (pixel or point, not latent); x0: [B, *sample_shape]. likelihood None: 8-bit for pictures,
    continuous for points. clip_sample None: the checkpoint's own clipping of x̂₀ to [−1, 1].
    """
    denoiser = as_denoiser(model)
    seed = check_seed(seed)
    if hasattr(model, "decode"):
        raise ValueError(f"{denoiser.name} is a latent model: the bound here is on pixels or points, not latents")
    choices = tuple(VarianceType.parse(v) for v in variances)
    if not choices:
        raise ValueError("variances must name at least one of fixed_small, fixed_large, learned_range")
    if VarianceType.LEARNED_RANGE in choices and not denoiser.learned_variance:
        raise ValueError(
            f"variance learned_range needs a model that outputs its variance; {denoiser.name} does not "
            "(none of the bundled models do): choose fixed_small (β̃_t) or fixed_large (β_t)"
        )
    shape = tuple(denoiser.sample_shape)
    if x0.ndim != len(shape) + 1 or tuple(x0.shape[1:]) != shape or not 1 <= x0.shape[0] <= MAX_EXAMPLES:
        wanted = ", ".join(map(str, shape))
        raise ValueError(f"x0 must be [B, {wanted}] with B in [1, {MAX_EXAMPLES}]; got {tuple(x0.shape)}")
    kind = Likelihood.for_shape(shape) if likelihood is None else Likelihood.parse(likelihood)
    clip = denoiser.clip_sample if clip_sample is None else bool(clip_sample)
    clean = quantize(x0) if kind is Likelihood.DISCRETE_8BIT else x0.double()
    schedule = denoiser.schedule
    total, batch = schedule.num_train_timesteps, clean.shape[0]
    terms = {v: np.zeros((total, batch)) for v in choices}
    chunk = max(1, MAX_CALL // batch)
    for start in range(0, total, chunk):
        steps = np.arange(start, min(start + chunk, total))  # 0-based timesteps of this call
        timesteps = torch.from_numpy(np.repeat(steps, batch))  # [S·B]
        x0_rep = clean.repeat(len(steps), *([1] * len(shape)))  # [S·B, *shape], step-major
        noise = torch.cat([step_noise(seed, int(i), tuple(clean.shape)).double() for i in steps])
        x_t = q_sample(schedule, x0_rep, timesteps, noise)  # [S·B, *shape]
        with torch.no_grad():
            output = denoiser.predict(x_t.to(denoiser.device, denoiser.dtype), timesteps.to(denoiser.device))
        prediction = output.prediction.to("cpu", torch.float64)
        values = None if output.variance_values is None else output.variance_values.to("cpu", torch.float64)
        a = torch.from_numpy(schedule.alphas_cumprod[timesteps.numpy()])  # [S·B]
        x0_hat = convert(prediction, denoiser.prediction, Prediction.SAMPLE, x_t, a)
        if clip:
            x0_hat = x0_hat.clamp(-1, 1)
        true = q_posterior(schedule, x0_rep, x_t, timesteps)
        model_mean = q_posterior(schedule, x0_hat, x_t, timesteps).mean
        first = torch.from_numpy(steps == 0).repeat_interleave(batch)  # [S·B]: rows of t = 1 (the decoder)
        for variance in choices:
            log_var = _model_log_variance(schedule, timesteps, variance, x_t, values)
            kl = gaussian_kl(true.mean, true.log_variance_clipped, model_mean, log_var)
            if kind is Likelihood.DISCRETE_8BIT:
                decoder = discretized_gaussian_nll(x0_rep, model_mean, log_var)
            else:
                decoder = gaussian_nll(x0_rep, model_mean, log_var)
            per_element = torch.where(first.reshape(-1, *([1] * len(shape))), decoder, kl)
            terms[variance][steps] = per_element.reshape(len(steps), batch, -1).sum(dim=2).numpy()
    prior = prior_kl(schedule.alphas_cumprod[-1], clean).numpy()
    dims = math.prod(shape)
    return tuple(Bound(denoiser.name, v, kind, dims, seed, terms[v], prior) for v in choices)


def vlb(
    model,
    x0: torch.Tensor,
    *,
    seed: int = 0,
    variance: str | VarianceType | None = None,
    likelihood: str | Likelihood | None = None,
    clip_sample: bool | None = None,
) -> Bound:
    """The variational bound of `model` on x0 ([B, *sample_shape]): L_T, every L_{t−1}, L₀, totals in nats and bits
    per dimension. variance None: the checkpoint's own (fixed_small for the bundled models)."""
    chosen = as_denoiser(model).variance_type if variance is None else variance
    return bounds(model, x0, seed=seed, variances=(chosen,), likelihood=likelihood, clip_sample=clip_sample)[0]
