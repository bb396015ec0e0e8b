"""Models on different schedules are compared at one noise level, matched by log SNR (issue 20 item 6).

The reference levels and a cosine model's exact output are float64 formulas written here (diffusers'
squaredcos_cap_v2 and linear betas), never the explorer's schedule tables.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer import Denoiser, DenoiserOutput, Prediction, Schedule
from explorer.diffusion.noise_levels import match_log_snr
from explorer.diffusion.teacher import teacher_force

T = 1000


def linear_alpha_bar() -> np.ndarray:
    """ᾱ of diffusers' linear betas 1e-4 → 0.02, float64 [T]."""
    return np.cumprod(1 - np.linspace(1e-4, 0.02, T))


def cosine_alpha_bar() -> np.ndarray:
    """ᾱ of diffusers' squaredcos_cap_v2: β_i = min(1 − f((i+1)/T)/f(i/T), 0.999), f(u) = cos²((u+.008)/1.008·π/2)."""

    def f(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = np.array([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)])
    return np.cumprod(1 - betas)


class ExactUnder(Denoiser):
    """Knows x₀ and outputs the exact ε̂ = (x_t − √ᾱ x₀)/√(1 − ᾱ) with ᾱ of its own schedule (from `alpha_bar`)."""

    def __init__(self, x0: torch.Tensor, schedule: Schedule, alpha_bar: np.ndarray, name: str) -> None:
        self.x0, self.alpha_bar = x0.double(), alpha_bar
        self.prediction, self.name = Prediction.EPSILON, name
        self.schedule, self.sample_shape = schedule, tuple(x0.shape[1:])

    def predict(self, x_t: torch.Tensor, timestep) -> DenoiserOutput:
        steps = torch.as_tensor(timestep).reshape(-1).expand(x_t.shape[0]).numpy()
        a = torch.from_numpy(self.alpha_bar[steps]).reshape(-1, *([1] * (x_t.ndim - 1)))  # [B, 1, ...]
        x0 = self.x0.repeat(x_t.shape[0] // self.x0.shape[0], *([1] * (self.x0.ndim - 1)))
        return DenoiserOutput(((x_t.double() - a.sqrt() * x0) / (1 - a).sqrt()).to(x_t.dtype))


X0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(3))
LINEAR = ExactUnder(X0, Schedule.from_name("linear", T), linear_alpha_bar(), "exact-linear")
COSINE = ExactUnder(X0, Schedule.from_name("cosine", T), cosine_alpha_bar(), "exact-cosine")


def test_a_cosine_exact_model_listed_second_scores_zero():
    steps = [10, 100, 500, 900, 999]
    result = teacher_force([LINEAR, COSINE], x0=X0, timesteps=steps, seed=2)
    linear, cosine = result.models
    for model in (linear, cosine):
        for errors in (model.eps_mse, model.x0_mse, model.v_mse):
            assert np.all(errors < 1e-8), (model.name, errors)  # x_t is float32 at the model boundary
        assert np.all(np.abs(model.kl) < 1e-8)
    assert result.notes == ()
    # the cosine model was called at its own timestep of the reference's log SNR
    wanted = np.log(linear_alpha_bar() / (1 - linear_alpha_bar()))[steps]
    own = np.log(cosine_alpha_bar() / (1 - cosine_alpha_bar()))[cosine.timesteps]
    assert np.all(np.abs(own - wanted) <= 0.5) and not np.array_equal(cosine.timesteps, steps)
    brute = [int(np.argmin(np.abs(np.log(cosine_alpha_bar() / (1 - cosine_alpha_bar())) - w))) for w in wanted]
    assert cosine.timesteps.tolist() == brute


def test_where_no_common_noise_level_exists_a_sentence_says_so():
    result = teacher_force([COSINE, LINEAR], x0=X0, timesteps=[500, 999], seed=2)
    cosine, linear = result.models
    assert np.all(cosine.eps_mse < 1e-8)
    # cosine's t = 1000 has log SNR ≈ −19.8; linear's noisiest level is ≈ −10.1
    assert linear.timesteps[1] == -1 and np.isnan(linear.eps_mse[1]) and linear.eps_mse[0] < 1e-8
    (note,) = result.notes
    assert "exact-linear has no noise level" in note and "t = 1000" in note


def test_match_log_snr_picks_the_nearest_level_and_refuses_beyond_the_tolerance():
    cosine = Schedule.from_name("cosine", T)
    target = np.array([5.0, 0.0, -5.0, -30.0, -math.inf])
    match = match_log_snr(cosine, target, tolerance=0.5)
    levels = np.log(cosine_alpha_bar() / (1 - cosine_alpha_bar()))
    for k in range(3):
        assert match.timesteps[k] == int(np.argmin(np.abs(levels - target[k])))
        assert match.alphas_cumprod[k] == pytest.approx(cosine_alpha_bar()[match.timesteps[k]], rel=1e-9)
    assert match.matched.tolist() == [True, True, True, False, False]
    assert np.isnan(match.alphas_cumprod[3]) and "no noise level" in match.refusal("m", [0, 1, 2, 3, 4])
    zero = Schedule.from_name("linear", T, rescale_zero_terminal_snr=True)
    assert match_log_snr(zero, [-math.inf]).timesteps.tolist() == [T - 1]  # pure noise matches pure noise
    with pytest.raises(ValueError, match="tolerance"):
        match_log_snr(cosine, target, tolerance=-1)
