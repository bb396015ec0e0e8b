"""Flow matching against diffusers' FlowMatchEulerDiscreteScheduler and float64 formulas written here."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.flux.pipeline_flux import calculate_shift

from explorer.diffusion import flow
from explorer.diffusion.flow import FlowTarget

TARGETS = list(FlowTarget)


def _point(seed: int = 0, batch: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, 3, 4, 4, generator=generator, dtype=torch.float64)
    eps = torch.randn(batch, 3, 4, 4, generator=generator, dtype=torch.float64)
    sigma = torch.rand(batch, generator=generator, dtype=torch.float64) * 0.98 + 0.01  # (0, 1)
    return x0, eps, sigma


def _vp_truth(x0: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor) -> dict[FlowTarget, torch.Tensor]:
    """Each target from x₀ and ε directly, written here: u = ε − x₀ and the VP v at ᾱ = (1−σ)²/((1−σ)²+σ²)."""
    a = ((1 - sigma) ** 2 / ((1 - sigma) ** 2 + sigma**2)).reshape(-1, 1, 1, 1)
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    return {FlowTarget.FLOW: eps - x0, FlowTarget.EPSILON: eps, FlowTarget.SAMPLE: x0, FlowTarget.V_PREDICTION: v}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(TARGETS, TARGETS)))
def test_every_conversion_matches_the_truth_and_round_trips_in_float64(source, target):
    x0, eps, sigma = _point()
    x_sigma = (1 - sigma.reshape(-1, 1, 1, 1)) * x0 + sigma.reshape(-1, 1, 1, 1) * eps
    truth = _vp_truth(x0, eps, sigma)
    converted = flow.convert_flow(truth[source], source, target, x_sigma, sigma)
    assert converted.dtype == torch.float64
    torch.testing.assert_close(converted, truth[target], rtol=0, atol=1e-10)
    back = flow.convert_flow(converted, target, source, x_sigma, sigma)
    torch.testing.assert_close(back, truth[source], rtol=0, atol=1e-10)


def test_conversions_that_divide_by_zero_refuse():
    x = torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="σ = 0"):
        flow.convert_flow(x, FlowTarget.SAMPLE, FlowTarget.FLOW, x, 0.0)
    with pytest.raises(ValueError, match="σ = 1"):
        flow.convert_flow(x, FlowTarget.EPSILON, FlowTarget.FLOW, x, 1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        flow.convert_flow(x, FlowTarget.FLOW, FlowTarget.SAMPLE, x, 1.5)
    # v ↔ u is defined at both ends: c(σ) ≥ 1/√2
    for sigma in (0.0, 1.0):
        u = flow.convert_flow(x, FlowTarget.V_PREDICTION, FlowTarget.FLOW, x, sigma)
        torch.testing.assert_close(flow.convert_flow(u, FlowTarget.FLOW, FlowTarget.V_PREDICTION, x, sigma), x)


def test_a_vp_model_and_a_flow_model_given_the_same_noise_at_matched_snr_start_from_the_same_point():
    """x_VP = √ᾱ x₀ + √(1−ᾱ) ε at ᾱ(σ) is x_σ / c(σ); the SNRs agree; σ(ᾱ) inverts ᾱ(σ)."""
    x0, eps, sigma = _point(1)
    x_sigma = flow.path_point(x0, eps, sigma)
    a = flow.alpha_cumprod_of_sigma(sigma)
    torch.testing.assert_close(a / (1 - a), (1 - sigma) ** 2 / sigma**2, rtol=1e-12, atol=0)
    x_vp = a.sqrt().reshape(-1, 1, 1, 1) * x0 + (1 - a).sqrt().reshape(-1, 1, 1, 1) * eps
    torch.testing.assert_close(flow.to_variance_preserving(x_sigma, sigma), x_vp, rtol=0, atol=1e-12)
    torch.testing.assert_close(flow.from_variance_preserving(x_vp, a), x_sigma, rtol=0, atol=1e-12)
    torch.testing.assert_close(flow.sigma_of_alpha_cumprod(a), sigma, rtol=0, atol=1e-12)


def _scheduler_sigmas(config: dict, n: int, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    scheduler = FlowMatchEulerDiscreteScheduler(**config)
    scheduler.set_timesteps(n, **kwargs)
    return scheduler.sigmas.double().numpy(), scheduler.timesteps.double().numpy()


@pytest.mark.parametrize("n", [1, 4, 28, 50])
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_sigmas_equal_diffusers_with_the_static_shift_of_sd3(n, shift):
    sigmas, timesteps = _scheduler_sigmas({"shift": shift}, n)
    mine = flow.inference_sigmas(n, shift=shift)
    np.testing.assert_allclose(mine.sigmas, sigmas, rtol=0, atol=2e-6)
    np.testing.assert_allclose(mine.timesteps, timesteps, rtol=0, atol=2e-3)
    assert mine.sigmas[-1] == 0 and len(mine.sigmas) == n + 1


@pytest.mark.parametrize(("n", "seq_len"), [(4, 256), (28, 1024), (50, 4096), (8, 64)])
def test_sigmas_equal_diffusers_with_the_dynamic_shift_of_flux(n, seq_len):
    """FLUX's pipeline: sigmas = linspace(1, 1/n, n), μ from the packed sequence length."""
    config = {"shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15}
    config |= {"base_image_seq_len": 256, "max_image_seq_len": 4096}
    mu = calculate_shift(seq_len, 256, 4096, 0.5, 1.15)
    assert flow.dynamic_shift_mu(seq_len) == pytest.approx(mu, abs=1e-12)
    given = np.linspace(1.0, 1 / n, n)
    sigmas, timesteps = _scheduler_sigmas(config, n, sigmas=given, mu=mu)
    mine = flow.inference_sigmas(n, mu=mu, sigmas=given)
    np.testing.assert_allclose(mine.sigmas, sigmas, rtol=0, atol=2e-6)
    np.testing.assert_allclose(mine.timesteps, timesteps, rtol=0, atol=2e-3)


def test_dynamic_shift_is_the_static_shift_with_s_equal_to_exp_mu():
    sigmas = np.linspace(0.01, 1, 50)
    for mu in (0.5, 0.8, 1.15):
        np.testing.assert_allclose(flow.dynamic_shift_sigmas(sigmas, mu), flow.shift_sigmas(sigmas, math.exp(mu)))


@pytest.mark.parametrize("stochastic", [False, True])
def test_euler_steps_equal_the_scheduler_step_for_step(stochastic):
    """A fixed smooth 'model' through both loops; every x_σ equal (float32, as diffusers steps)."""
    n, shift = 12, 3.0
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift, stochastic_sampling=stochastic)
    scheduler.set_timesteps(n)
    mine = flow.inference_sigmas(n, shift=shift)

    def model(x: torch.Tensor, timestep: float) -> torch.Tensor:
        return torch.tanh(x) * (1 + timestep / 1000) - 0.3 * x

    x_theirs = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    x_mine = x_theirs.clone()
    for i, timestep in enumerate(scheduler.timesteps):
        noise = torch.randn(x_theirs.shape, generator=torch.Generator().manual_seed(100 + i))
        x_theirs = scheduler.step(
            model(x_theirs, float(timestep)), timestep, x_theirs, generator=torch.Generator().manual_seed(100 + i)
        ).prev_sample
        u = model(x_mine, float(mine.timesteps[i]))
        sigma, sigma_next = float(mine.sigmas[i]), float(mine.sigmas[i + 1])
        if stochastic:
            x_mine = flow.stochastic_step(x_mine, u, sigma, sigma_next, noise)
        else:
            x_mine = flow.euler_step(x_mine, u, sigma, sigma_next)
        torch.testing.assert_close(x_mine, x_theirs, rtol=1e-5, atol=1e-5)


def test_the_exact_velocity_equals_a_monte_carlo_estimate():
    """u*(x_σ) = E[ε − x₀ | x_σ]: draw x₀ from the data and ε, keep the pairs whose x_σ fall near a probe point."""
    data = torch.tensor([[-1.0, 0.0], [1.0, 0.5], [0.2, -1.2]], dtype=torch.float64)
    sigma = 0.6
    probe = torch.tensor([[0.1, -0.2]], dtype=torch.float64)
    exact = flow.exact_velocity(data, probe, sigma)[0]

    # Importance form of the same expectation, by sampling: E[(ε − x₀) | x_σ = probe] with x₀ uniform on the data and
    # ε = (probe − (1−σ) x₀)/σ; the weight of x₀ = x_n is the Gaussian density of that ε. Independent of the oracle.
    generator = torch.Generator().manual_seed(0)
    draws = data[torch.randint(0, 3, (200_000,), generator=generator)]  # x₀ ~ p_data
    eps = (probe - (1 - sigma) * draws) / sigma
    log_w = -0.5 * (eps**2).sum(-1)
    w = torch.softmax(log_w, 0)
    estimate = (w[:, None] * (eps - draws)).sum(0)
    spread = ((w[:, None] * ((eps - draws) - estimate) ** 2).sum(0)).sqrt() / math.sqrt((1 / (w**2).sum()).item())
    assert ((exact - estimate).abs() <= 4 * spread + 1e-9).all(), (exact, estimate, spread)

    # And a plain Monte Carlo without the closed form: pairs (x₀, ε) whose x_σ lands in a small box around the probe.
    x0 = data[torch.randint(0, 3, (2_000_000,), generator=generator)]
    e = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    x_sigma = (1 - sigma) * x0 + sigma * e
    near = ((x_sigma - probe).abs() < 0.03).all(-1)
    u = (e - x0)[near]
    mean, error = u.mean(0), u.std(0) / math.sqrt(len(u))
    assert len(u) > 1000 and ((exact - mean).abs() < 4 * error + 0.02).all(), (exact, mean, error)
