"""The exact references: the optimal denoiser and the true reverse mixture, against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer import Schedule
from explorer.diffusion.oracle import (
    OptimalDenoiser,
    mixture_density,
    posterior_weights,
    reverse_between,
    true_reverse,
)
from explorer.diffusion.sampler import sample

SCHEDULE = Schedule.from_name("linear", 1000)
DATA = torch.tensor([[-1.0, 0.5], [0.8, 0.9], [0.2, -1.2], [1.5, -0.3]], dtype=torch.float64)


def brute_force_x0(data: torch.Tensor, x_t: torch.Tensor, a: float) -> torch.Tensor:
    """E[x₀|x_t] by Bayes' rule, one point at a time, with the Gaussian densities written out."""
    out = []
    for x in x_t:
        densities = []
        for point in data:
            d = x - math.sqrt(a) * point
            densities.append(math.exp(-float(d @ d) / (2 * (1 - a))) / (2 * math.pi * (1 - a)) ** (len(x) / 2))
        w = torch.tensor(densities, dtype=torch.float64)
        out.append((w / w.sum()) @ data)
    return torch.stack(out)


@pytest.mark.parametrize("t", [0, 50, 300, 999])
def test_optimal_denoiser_equals_brute_force(t: int) -> None:
    x_t = torch.randn(6, 2, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
    oracle = OptimalDenoiser(DATA, SCHEDULE)
    a = float(SCHEDULE.alphas_cumprod[t])
    if t == 0:  # at t = 1 the weights are so peaked that brute force underflows: compare with the nearest point
        x_t = math.sqrt(a) * DATA[[0, 1, 2, 3, 0, 1]] + math.sqrt(1 - a) * x_t
        torch.testing.assert_close(oracle(x_t, t), DATA[[0, 1, 2, 3, 0, 1]], rtol=0, atol=1e-8)
    else:
        torch.testing.assert_close(oracle(x_t, t), brute_force_x0(DATA, x_t, a), rtol=1e-9, atol=1e-9)


def test_oracle_snaps_to_the_nearest_data_point_as_t_goes_to_1() -> None:
    g = torch.Generator().manual_seed(0)
    x_near = DATA + 0.05 * torch.randn(DATA.shape, generator=g, dtype=torch.float64)
    oracle = OptimalDenoiser(DATA, SCHEDULE)
    errors = [float((oracle(x_near, t) - DATA).abs().max()) for t in (300, 100, 20, 0)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-6


def test_oracle_in_every_parameterization_and_per_sample_timesteps() -> None:
    x_t = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.tensor([10, 200, 600, 999])
    x0 = OptimalDenoiser(DATA, SCHEDULE)(x_t, t)
    for k in range(4):
        torch.testing.assert_close(x0[k : k + 1], OptimalDenoiser(DATA, SCHEDULE)(x_t[k : k + 1], int(t[k])))
    eps = OptimalDenoiser(DATA, SCHEDULE, prediction="epsilon")(x_t, t)
    a = torch.from_numpy(SCHEDULE.alphas_cumprod[t.numpy()])[:, None]
    torch.testing.assert_close(eps, (x_t - a.sqrt() * x0) / (1 - a).sqrt())


def test_oracle_samples_land_on_data_points() -> None:
    run = sample(OptimalDenoiser(DATA.float(), SCHEDULE), num_inference_steps=50, batch_size=8, seed=2)
    nearest = torch.cdist(run.samples.double(), DATA).min(dim=1).values
    assert float(nearest.max()) < 1e-3  # the exact optimum can only copy its data


def test_weights_are_a_distribution_and_uniform_at_zero_snr() -> None:
    x = torch.randn(3, 2, dtype=torch.float64)
    w = posterior_weights(DATA, x, torch.tensor([0.5, 0.1, 0.0]))
    torch.testing.assert_close(w.sum(dim=1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(w[2], torch.full((4,), 0.25, dtype=torch.float64))


def test_true_reverse_mixture_density_integrates_to_one_and_matches_brute_force() -> None:
    x_t = torch.tensor([[0.3, -0.2], [1.0, 1.0]], dtype=torch.float64)
    t, s = 400, 300
    mixture = true_reverse(DATA, SCHEDULE, x_t, t, s)
    axis = torch.linspace(-4, 4, 401, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    density = mixture_density(mixture, grid)  # [2, G]
    cell = float(axis[1] - axis[0]) ** 2
    np.testing.assert_allclose(density.sum(dim=1).numpy() * cell, 1.0, rtol=1e-3)
    # Brute force: q(x_s|x_t) ∝ Σ_n q(x_t|x_s) q(x_s|x_n), evaluated pointwise and normalised on the grid.
    a_t, a_s = SCHEDULE.alphas_cumprod[t], SCHEDULE.alphas_cumprod[s]
    alpha = a_t / a_s
    lik = torch.exp(-((x_t[0] - math.sqrt(alpha) * grid) ** 2).sum(-1) / (2 * (1 - alpha)))
    prior = sum(torch.exp(-((grid - math.sqrt(a_s) * p) ** 2).sum(-1) / (2 * (1 - a_s))) for p in DATA)
    brute = lik * prior
    brute = brute / (brute.sum() * cell)
    np.testing.assert_allclose(density[0].numpy(), brute.numpy(), atol=1e-6 * float(brute.max()) + 1e-9, rtol=1e-4)


def test_true_reverse_turns_gaussian_for_small_steps() -> None:
    x_t = torch.tensor([[0.1, 0.1]], dtype=torch.float64)
    big = true_reverse(DATA, SCHEDULE, x_t, 300, 100)
    small = true_reverse(DATA, SCHEDULE, x_t, 300, 299)
    # The spread of component means relative to β̃ measures non-Gaussianity: tiny for one step.
    spread = lambda m: float(torch.linalg.eigvalsh(m.covariance()[0]).max()) / m.variance - 1  # noqa: E731
    assert spread(small) < 0.05 < spread(big)
    to_data = true_reverse(DATA, SCHEDULE, x_t, 300, -1)
    assert to_data.variance == 0.0 and torch.equal(to_data.means[0], DATA)
    with pytest.raises(ValueError, match="point masses"):
        mixture_density(to_data, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="prev_timestep"):
        true_reverse(DATA, SCHEDULE, x_t, 300, 300)


def test_the_grid_density_is_the_mixture_density_on_the_grid():
    """The separable matrix-product form equals the direct sum over components at every grid point."""
    import numpy as np

    from explorer.diffusion.oracle import grid_density, mixture_density, true_reverse
    from explorer.diffusion.schedules import Schedule

    generator = torch.Generator().manual_seed(3)
    data = torch.randn(300, 2, generator=generator, dtype=torch.float64)
    x_t = torch.randn(3, 2, generator=generator, dtype=torch.float64)
    mixture = true_reverse(data, Schedule.from_name("linear", 1000), x_t, 400, prev_timestep=380)
    xs, ys = np.linspace(-3, 3, 31), np.linspace(-2, 2.5, 17)
    grid = torch.from_numpy(np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2))
    direct = mixture_density(mixture, grid).reshape(3, 17, 31)
    torch.testing.assert_close(grid_density(mixture, xs, ys), direct, rtol=1e-10, atol=1e-300)


def test_reverse_between_is_ddims_reverse_and_reduces_to_the_exact_one_at_eta_one() -> None:
    """DDIM's q_σ at η = 1 has σ² = β̃ and the posterior mean μ̃ (Song et al. 2021, eq. 16): the Markov reverse."""
    x_t = torch.randn(3, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    exact = true_reverse(DATA, SCHEDULE, x_t, 300, 120)
    ddim = reverse_between(DATA, SCHEDULE, x_t, 300, 120, eta=1.0)
    torch.testing.assert_close(ddim.means, exact.means, rtol=0, atol=1e-12)
    assert ddim.variance == pytest.approx(exact.variance, rel=1e-12)
    deterministic = reverse_between(DATA, SCHEDULE, x_t, 300, 120, eta=0.0)
    a_t, a_s = float(SCHEDULE.alphas_cumprod[300]), float(SCHEDULE.alphas_cumprod[120])
    eps = (x_t[:, None, :] - math.sqrt(a_t) * DATA.double()[None]) / math.sqrt(1 - a_t)
    torch.testing.assert_close(deterministic.means, math.sqrt(a_s) * DATA.double()[None] + math.sqrt(1 - a_s) * eps)
    assert deterministic.variance == 0.0
    same = reverse_between(DATA, SCHEDULE, x_t, 300, 300)  # a corrector call: no change of level
    torch.testing.assert_close(same.mean(), x_t)
    assert same.variance == 0.0
    with pytest.raises(ValueError, match=r"prev_timestep must be an integer in \[-1, 300\]"):
        reverse_between(DATA, SCHEDULE, x_t, 300, 301)
