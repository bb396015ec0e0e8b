"""q(x_t|x_0) and q(x_{t−1}|x_t,x_0): against diffusers, against Bayes' rule, on any rank and batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer import Schedule, q_posterior, q_posterior_sample, q_sample
from explorer.diffusion.posterior import VarianceType, reverse_log_variance


@pytest.mark.parametrize("shape", [(5, 2), (4, 1, 6, 6), (3, 2, 2, 2, 2)])
def test_q_sample_matches_diffusers_add_noise(shape: tuple) -> None:
    from diffusers import DDPMScheduler

    schedule = Schedule.from_name("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    t = torch.randint(0, 1000, (shape[0],), generator=g)
    theirs = DDPMScheduler().add_noise(x0, noise, t)
    torch.testing.assert_close(q_sample(schedule, x0, t, noise), theirs, rtol=1e-5, atol=1e-5)


def test_posterior_is_bayes_rule_per_pixel() -> None:
    """q(x_{t−1}|x_t,x_0) ∝ q(x_t|x_{t−1}) q(x_{t−1}|x_0): check mean and variance by quadrature."""
    schedule = Schedule.from_name("cosine", 50)
    x0, x_t = torch.tensor([[0.7]], dtype=torch.float64), torch.tensor([[-0.4]], dtype=torch.float64)
    grid = np.linspace(-6, 6, 200_001)
    for i in (1, 10, 30, 49):
        beta, abar_prev = schedule.betas[i], schedule.alphas_cumprod_prev[i]
        log_lik = -((x_t.item() - math.sqrt(1 - beta) * grid) ** 2) / (2 * beta)
        log_prior = -((grid - math.sqrt(abar_prev) * x0.item()) ** 2) / (2 * (1 - abar_prev))
        w = np.exp(log_lik + log_prior - (log_lik + log_prior).max())
        w /= w.sum()
        mean = (w * grid).sum()
        var = (w * (grid - mean) ** 2).sum()
        posterior = q_posterior(schedule, x0, x_t, i)
        assert posterior.mean.item() == pytest.approx(mean, abs=1e-6)
        assert posterior.variance.item() == pytest.approx(var, rel=1e-4)


def test_posterior_parts_sum_to_the_mean_and_t1_is_x0() -> None:
    schedule = Schedule.from_name("linear", 1000)
    x0, x_t = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    post = q_posterior(schedule, x0, x_t, torch.tensor([0, 10, 999]))
    torch.testing.assert_close(post.from_x0 + post.from_xt, post.mean)
    torch.testing.assert_close(post.mean[0], x0[0])
    assert post.variance.shape == (3, 1, 1, 1) and post.variance[0].item() == 0.0
    sample = q_posterior_sample(
        schedule, x0, x_t, torch.tensor([0, 10, 999]), generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(sample[0], x0[0])  # no noise at t = 1


def test_posterior_sampling_statistics() -> None:
    schedule = Schedule.from_name("linear", 1000)
    x0 = torch.full((200_000, 1), 0.5, dtype=torch.float64)
    x_t = torch.full_like(x0, -0.2)
    draws = q_posterior_sample(schedule, x0, x_t, 300, generator=torch.Generator().manual_seed(1))
    post = q_posterior(schedule, x0[:1], x_t[:1], 300)
    assert draws.mean().item() == pytest.approx(post.mean.item(), abs=4 * math.sqrt(post.variance.item() / 2e5))
    assert draws.var().item() == pytest.approx(post.variance.item(), rel=0.02)


def test_randomness_is_never_implicit() -> None:
    schedule = Schedule.from_name("linear", 10)
    with pytest.raises(ValueError, match="generator"):
        q_sample(schedule, torch.zeros(2, 2), 3)
    with pytest.raises(ValueError, match="per-sample timesteps"):
        q_sample(schedule, torch.zeros(2, 2), torch.tensor([1, 2, 3]), torch.zeros(2, 2))


def test_reverse_variances_match_diffusers() -> None:
    from diffusers import DDPMScheduler

    schedule = Schedule.from_name("linear", 1000)
    like = torch.zeros(2, 1, 1, 1, dtype=torch.float64)
    for variance in ("fixed_small", "fixed_large"):
        scheduler = DDPMScheduler(variance_type=variance)
        for t in (1, 500, 999):
            ours = reverse_log_variance(schedule, t, variance, like).exp()
            assert ours[0].item() == pytest.approx(float(scheduler._get_variance(t)), rel=1e-4)
    scheduler = DDPMScheduler(variance_type="learned_range")
    values = torch.tensor([-1.0, 0.3]).reshape(2, 1, 1, 1).double()
    for t in (1, 500, 999):
        ours = reverse_log_variance(schedule, t, VarianceType.LEARNED_RANGE, like, values)
        theirs = scheduler._get_variance(t, predicted_variance=values.float())
        torch.testing.assert_close(ours, theirs.double(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="learned_range"):
        reverse_log_variance(schedule, 5, "learned_range", like)
    with pytest.raises(ValueError, match="fixed_small, fixed_large, learned_range"):
        reverse_log_variance(schedule, 5, "fixed_medium", like)
