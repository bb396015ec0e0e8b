"""explorer.vlb against computations that share none of its code.

References: diffusers' linear-schedule tables recomputed in float64 (tests/reference.py); the closed-form KL terms
against torch.distributions.kl_divergence; the 8-bit decoder against the 256 bin probabilities from Normal.cdf; the
whole bound against a Monte Carlo estimate of E_q[log q(x_{1:T}|x₀) − log p_θ(x_{0:T})] over forward-chain
trajectories x₀ → x₁ → … → x_T (q(x_t|x_{t−1}) = N(√α_t x_{t−1}, β_t I)), every density from torch.distributions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import mpmath
import numpy as np
import pytest
import torch
from reference import float64_scheduler
from torch.distributions import Normal, kl_divergence

import explorer
from explorer.data import Dataset, digits, held_out_data, spread_subset, training_data
from explorer.diffusion.bound import log_normal_mass
from explorer.diffusion.noise import step_noise
from explorer.diffusion.posterior import VarianceType

ROOT = Path(__file__).resolve().parents[1]
SMALL, LARGE = VarianceType.FIXED_SMALL, VarianceType.FIXED_LARGE


@pytest.fixture(scope="module")
def tables() -> dict[str, torch.Tensor]:
    """diffusers' linear schedule (1e-4 → 0.02, T = 1000) in float64, and β̃ from it by eq. 7, written here."""
    scheduler = float64_scheduler("linear", 1000, False)
    betas, abar = scheduler.betas.double(), scheduler.alphas_cumprod.double()
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    tilde = (1 - abar_prev) / (1 - abar) * betas
    return {"betas": betas, "abar": abar, "abar_prev": abar_prev, "tilde": tilde}


def model_of(name: str):
    if name.startswith("exact-"):
        from ui.models import load_model

        return load_model(name)
    return explorer.load(name)


def x0_hat(model, x_t: torch.Tensor, timesteps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """The model's x̂₀ by the formulas of Ho et al. and Salimans & Ho, in float64, clipped when the checkpoint clips.

    x_t: [N, *shape]; timesteps: [N]. Calls the model in chunks of 2,048."""
    outputs = []
    with torch.no_grad():
        for start in range(0, x_t.shape[0], 2048):
            x = x_t[start : start + 2048]
            outputs.append(model(x.float(), timesteps[start : start + 2048]).double())
    out = torch.cat(outputs)
    a = abar[timesteps].reshape(-1, *([1] * (x_t.ndim - 1)))
    kind = model.prediction.value
    if kind == "epsilon":
        x0 = (x_t - (1 - a).sqrt() * out) / a.sqrt()
    elif kind == "sample":
        x0 = out
    else:  # v = √ᾱ ε − √(1−ᾱ) x₀  ⇒  x₀ = √ᾱ x_t − √(1−ᾱ) v
        x0 = a.sqrt() * x_t - (1 - a).sqrt() * out
    return x0.clamp(-1, 1) if model.clip_sample else x0


def posterior_mean(tables, x0: torch.Tensor, x_t: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """μ̃_t = √ᾱ_{t−1} β_t / (1−ᾱ_t) x₀ + √α_t (1−ᾱ_{t−1}) / (1−ᾱ_t) x_t (eq. 7), per sample."""
    shape = (-1, *([1] * (x_t.ndim - 1)))
    b, a, a_prev = (tables[k][timesteps].reshape(shape) for k in ("betas", "abar", "abar_prev"))
    return a_prev.sqrt() * b / (1 - a) * x0 + (1 - b).sqrt() * (1 - a_prev) / (1 - a) * x_t


def reverse_std(tables, variance: VarianceType, timesteps: torch.Tensor) -> torch.Tensor:
    """σ_t: √β_t or √β̃_t, and at t = 1 (the decoder) √β̃_2 for both, as Ho et al.'s code sets it:
    'fixedlarge': np.log(np.append(posterior_variance[1], betas[1:])), 'fixedsmall': posterior_log_variance_clipped."""
    table = (tables["betas"] if variance is LARGE else tables["tilde"]).clone()
    table[0] = tables["tilde"][1]
    return table[timesteps].sqrt()


def quantized(x0: torch.Tensor) -> torch.Tensor:
    return torch.round((x0.double() + 1) * 127.5) / 127.5 - 1


def bin_log_probabilities(x0: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log P(x₀'s bin) from the 256 bin probabilities Φ(edge_{k+1}) − Φ(edge_k) of every pixel (which sum to 1); a bin
    below 1e-6 (a pixel many σ from the mean: float64 subtraction of Φ loses its digits) is evaluated again by mpmath
    at 50 digits."""
    edges = torch.cat([torch.tensor([-math.inf]), torch.linspace(-1, 1, 256, dtype=torch.float64)[:-1] + 1 / 255])
    edges = torch.cat([edges, torch.tensor([math.inf])])  # [257]
    cdf = Normal(mean[..., None], std[..., None]).cdf(edges)  # [..., 257]
    probabilities = cdf[..., 1:] - cdf[..., :-1]  # [..., 256]
    torch.testing.assert_close(probabilities.sum(-1), torch.ones_like(mean), rtol=0, atol=1e-12)
    index = torch.round((x0 + 1) * 127.5).long()
    own = probabilities.gather(-1, index[..., None]).squeeze(-1)
    log_p = own.log()
    for position in torch.nonzero(own < 1e-6).tolist():  # below 1e-6, Φ near 1 leaves float64 few digits
        k, mu, sigma = int(index[tuple(position)]), float(mean[tuple(position)]), float(std[tuple(position)])
        low, high = (float(edges[k]) - mu) / sigma, (float(edges[k + 1]) - mu) / sigma
        # Φ(b) − Φ(a) = Φ(−a) − Φ(−b): above the mean both Φ are 1 − tiny, which 50 digits cannot subtract
        with mpmath.workdps(50):
            mass = mpmath.ncdf(-low) - mpmath.ncdf(-high) if low > 0 else mpmath.ncdf(high) - mpmath.ncdf(low)
            log_p[tuple(position)] = float(mpmath.log(mass))
    return log_p


CASES = [("moons-eps", "moons", 16), ("ring-v", "ring", 16), ("digits-eps", "digits", 2), ("digits-x0", "digits", 1)]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def case(request, tables):
    """A model, B examples, its bounds for both variances, and the model's μ_θ at every t, recomputed here."""
    name, data, count = request.param
    model = model_of(name)
    x0 = spread_subset(training_data(data, 0), count)
    found = explorer.bounds(model, x0, seed=3, variances=(SMALL, LARGE))
    clean = quantized(x0) if data == "digits" else x0.double()
    T = 1000
    x_t = torch.stack(
        [
            tables["abar"][i].sqrt() * clean
            + (1 - tables["abar"][i]).sqrt() * step_noise(3, i, tuple(x0.shape)).double()
            for i in range(T)
        ]
    )  # [T, B, *shape]: the draws the bound documents, from (seed, timestep)
    timesteps = torch.arange(T).repeat_interleave(count)
    flat = x_t.reshape(T * count, *x0.shape[1:])
    x0_rep = clean.repeat(T, *([1] * (x0.ndim - 1)))
    model_mean = posterior_mean(tables, x0_hat(model, flat, timesteps, tables["abar"]), flat, timesteps)
    true_mean = posterior_mean(tables, x0_rep, flat, timesteps)
    return {
        "name": name,
        "data": data,
        "x0": clean,
        "bounds": dict(zip((SMALL, LARGE), found, strict=True)),
        "model_mean": model_mean.reshape(T, count, -1),
        "true_mean": true_mean.reshape(T, count, -1),
    }


@pytest.mark.parametrize("variance", [SMALL, LARGE])
def test_every_kl_term_equals_torch_gaussian_kl(case, tables, variance) -> None:
    bound = case["bounds"][variance]
    assert bound.terms.shape == (1000, case["x0"].shape[0])
    t = torch.arange(1, 1000)  # 0-based timesteps of L_{t−1}, paper t ≥ 2
    std = reverse_std(tables, variance, t)[:, None, None]
    truth = Normal(case["true_mean"][1:], tables["tilde"][t].sqrt()[:, None, None])
    model = Normal(case["model_mean"][1:], std)
    expected = kl_divergence(truth, model).sum(-1)  # [T − 1, B]
    np.testing.assert_allclose(bound.terms[1:], expected.numpy(), rtol=1e-6, atol=1e-9)
    assert (bound.terms[1:] >= 0).all()


@pytest.mark.parametrize("variance", [SMALL, LARGE])
def test_decoder_term(case, tables, variance) -> None:
    """L₀: a direct sum over the 256 bins of every pixel for digits; the Gaussian density for points."""
    bound = case["bounds"][variance]
    mean = case["model_mean"][0]  # μ_θ(x₁, 1) = x̂₀: [B, D]
    std = reverse_std(tables, variance, torch.tensor([0]))
    x0 = case["x0"].reshape(mean.shape)
    if case["data"] == "digits":
        expected = -bin_log_probabilities(x0, mean, std.expand_as(mean)).sum(-1)
        assert bound.likelihood is explorer.Likelihood.DISCRETE_8BIT
    else:
        expected = -Normal(mean, std).log_prob(x0).sum(-1)
        assert bound.likelihood is explorer.Likelihood.CONTINUOUS
    np.testing.assert_allclose(bound.decoder, expected.numpy(), rtol=1e-9, atol=1e-9)


def test_prior_term_and_totals(case, tables) -> None:
    bound = case["bounds"][SMALL]
    x0 = case["x0"].reshape(case["x0"].shape[0], -1)
    a = tables["abar"][-1]
    expected = kl_divergence(Normal(a.sqrt() * x0, (1 - a).sqrt()), Normal(0.0, 1.0)).sum(-1)
    np.testing.assert_allclose(bound.prior, expected.numpy(), rtol=1e-9)
    D = x0.shape[1]
    np.testing.assert_allclose(bound.nats, bound.prior + bound.terms.sum(0))
    np.testing.assert_allclose(bound.bits_per_dim, bound.nats / (D * math.log(2)))
    assert bound.cumulative_bits_per_dim()[-1] * D * math.log(2) == pytest.approx(bound.terms.sum(0).mean())


def monte_carlo(model, tables, x0: torch.Tensor, variance: VarianceType, repeats: int, seed: int) -> torch.Tensor:
    """log q(x_{1:T}|x₀) − log p_θ(x_{0:T}) for `repeats` forward-chain trajectories of each x₀: [B, repeats].

    x0: [B, *shape] (already on the 8-bit levels for pictures)."""
    generator = torch.Generator().manual_seed(seed)
    T, count = 1000, x0.shape[0]
    start = x0.double().repeat(repeats, *([1] * (x0.ndim - 1)))  # [R·B, *shape]
    chain, log_q, previous = [], torch.zeros(start.shape[0], dtype=torch.float64), start
    for i in range(T):
        beta = tables["betas"][i]
        step = Normal((1 - beta).sqrt() * previous, beta.sqrt(), validate_args=False)
        noise = torch.randn(previous.shape, generator=generator, dtype=torch.float64)
        current = (1 - beta).sqrt() * previous + beta.sqrt() * noise
        log_q += step.log_prob(current).reshape(current.shape[0], -1).sum(-1)
        chain.append(current)
        previous = current
    x_t = torch.stack(chain)  # [T, R·B, *shape]: x_1 … x_T
    n = start.shape[0]
    timesteps = torch.arange(T).repeat_interleave(n)
    flat = x_t.reshape(T * n, *x0.shape[1:])
    mean = posterior_mean(tables, x0_hat(model, flat, timesteps, tables["abar"]), flat, timesteps).reshape(T, n, -1)
    std = reverse_std(tables, variance, torch.arange(T))[:, None, None]
    targets = torch.cat([start.reshape(1, n, -1), x_t[:-1].reshape(T - 1, n, -1)])  # x_{t−1} for t = 1..T
    log_p = Normal(0.0, 1.0).log_prob(x_t[-1].reshape(n, -1)).sum(-1)  # p(x_T)
    log_p += Normal(mean[1:], std[1:]).log_prob(targets[1:]).sum((0, 2))  # Σ_{t≥2} log p_θ(x_{t−1}|x_t)
    if x0.ndim == 4:
        log_p += bin_log_probabilities(targets[0], mean[0], std[0].expand_as(mean[0])).sum(-1)
    else:
        log_p += Normal(mean[0], std[0]).log_prob(targets[0]).sum(-1)
    return (log_q - log_p).reshape(repeats, count).T


MONTE_CARLO = [
    ("moons-eps", "moons", SMALL, 12, 16, 3),
    ("moons-v", "moons", LARGE, 12, 16, 3),
    ("exact-ring", "ring", SMALL, 8, 16, 3),
    ("digits-eps", "digits", SMALL, 2, 6, 3),
]


@pytest.mark.parametrize(("name", "data", "variance", "count", "repeats", "seeds"), MONTE_CARLO)
def test_total_equals_monte_carlo_estimate(tables, name, data, variance, count, repeats, seeds) -> None:
    """Both are unbiased for E_q[log q(x_{1:T}|x₀) − log p_θ(x_{0:T})]: per x₀, the mean of a few bounds (other
    seeds) and of R trajectories differ by less than three standard errors of that difference, and that standard
    error is small beside the total (the test has power)."""
    model = model_of(name)
    x0 = spread_subset(training_data(data, 0) if not name.startswith("exact") else explorer.data.point_set(data), count)
    clean = quantized(x0) if data == "digits" else x0.double()
    bound_samples = np.stack(
        [explorer.vlb(model, x0, seed=seed, variance=variance).nats for seed in range(seeds)], axis=1
    )  # [B, S]
    traced = monte_carlo(model, tables, clean, variance, repeats, seed=11).numpy()  # [B, R]
    difference = bound_samples.mean(1) - traced.mean(1)  # [B]
    variance_of_difference = bound_samples.var(1, ddof=1) / seeds + traced.var(1, ddof=1) / repeats
    error = math.sqrt(variance_of_difference.sum()) / count
    gap = difference.mean()
    total = traced.mean()
    assert abs(gap) < 3 * error, (name, variance.value, gap, error, total)
    assert error < 0.05 * abs(total) + 0.5, (error, total)


def test_log_normal_mass_far_in_both_tails() -> None:
    """log(Φ(b) − Φ(a)) stays exact where Φ underflows or rounds to 1 (against mpmath at 1,000 digits, enough to
    subtract two values of Φ that agree to 700 digits)."""
    pairs = [(-40.0, -39.9), (39.9, 40.0), (-1e-3, 1e-3), (-math.inf, -30.0), (30.0, math.inf), (-0.5, 0.5)]
    low = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    high = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    found = log_normal_mass(low, high)
    for (a, b), value in zip(pairs, found.tolist(), strict=True):
        with mpmath.workdps(1000):
            expected = float(mpmath.log(mpmath.ncdf(b) - mpmath.ncdf(a)))
        assert value == pytest.approx(expected, rel=1e-12)


def test_memorization_in_numbers() -> None:
    """The exact denoiser of the training digits: a low bound on its training set, an enormous one off it."""
    from ui.models import load_model

    exact = load_model("exact-digits")
    train = explorer.vlb(exact, spread_subset(digits("train").images, 2)).mean_bits_per_dim()
    held = explorer.vlb(exact, held_out_data(Dataset.DIGITS, 2)).mean_bits_per_dim()
    assert train < 1.5 < 100 < held


def test_bad_input_is_refused_with_its_field() -> None:
    model = explorer.load("moons-eps")
    with pytest.raises(ValueError, match=r"learned_range.*none of the bundled models"):
        explorer.vlb(model, torch.zeros(2, 2), variance="learned_range")
    with pytest.raises(ValueError, match="variance must be one of"):
        explorer.vlb(model, torch.zeros(2, 2), variance="huge")
    with pytest.raises(ValueError, match=r"x0 must be \[B, 2\]"):
        explorer.vlb(model, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="seed"):
        explorer.vlb(model, torch.zeros(2, 2), seed=-1)
    with pytest.raises(ValueError, match=r"\[-1, 1\] for the 8-bit likelihood"):
        explorer.vlb(model, torch.full((2, 2), 3.0), likelihood="discrete_8bit")


def test_held_out_data_is_unseen() -> None:
    """Held-out digits are not training digits; every bundled recipe drew its pool with the seed the page uses."""
    train = digits("train").images.reshape(4000, -1)
    held = held_out_data("digits", 50).reshape(50, -1)
    assert torch.cdist(held, train).min() > 0
    for card in sorted((ROOT / "pretrained").glob("*/training.json")):
        if card.parent.name.split("-")[0] in ("moons", "ring"):
            assert json.loads(card.read_text())["recipe"]["seed"] == 0, card
