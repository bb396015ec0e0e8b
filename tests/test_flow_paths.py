"""The exact flow paths against an independent float64 integration (SciPy's DOP853 on a softmax written here), the
straight chords against their definition, and Euler steps of the exact velocity against a loop written here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from explorer.diffusion.flow_paths import (
    SIGMA_MIN,
    euler_endpoints,
    flow_paths,
    integrate_exact,
    to_flow_coordinates,
)

DATA = torch.tensor([[-1.0, 0.0], [1.0, 0.5], [0.2, -1.2], [0.4, 0.9], [-0.6, 1.1]], dtype=torch.float64)
START = torch.tensor([[0.3, -0.4], [-1.5, 0.7], [2.0, 1.8]], dtype=torch.float64)


@pytest.fixture(autouse=True)
def one_thread():
    """Small matrices on a shared machine: one thread avoids OpenMP spinning (speed only, not the results)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _velocity(x: np.ndarray, sigma: float) -> np.ndarray:
    """u*(x, σ) = Σ_n w_n (x − x_n)/σ, w ∝ exp(−‖x − (1 − σ) x_n‖² / (2σ²)): written here, NumPy float64."""
    data = DATA.numpy()
    logits = -((x[None, :] - (1 - sigma) * data) ** 2).sum(-1) / (2 * sigma**2)
    w = np.exp(logits - logits.max())
    w /= w.sum()
    return (x - w @ data) / sigma


def _reference(start: np.ndarray, sigma_start: float, sigmas: np.ndarray) -> np.ndarray:
    """dx/dσ = u* from σ₀ down to the given σ (≥ SIGMA_MIN), DOP853 at rtol 1e-11: [len(sigmas), D]."""
    solution = solve_ivp(
        lambda sigma, x: _velocity(x, sigma),
        (sigma_start, sigmas[-1]),
        start,
        method="DOP853",
        t_eval=sigmas,
        rtol=1e-11,
        atol=1e-12,
    )
    assert solution.success
    return solution.y.T


@pytest.mark.parametrize("sigma_start", [1.0, 0.7])
def test_the_exact_paths_equal_an_independent_float64_integration(sigma_start):
    sigmas, paths = integrate_exact(DATA, START, sigma_start)
    assert sigmas[0] == sigma_start and sigmas[-1] == 0 and np.all(np.diff(sigmas) < 0)
    assert sigmas[-2] == pytest.approx(SIGMA_MIN)
    probe = np.unique(np.r_[np.linspace(0, len(sigmas) - 2, 12).round().astype(int)])
    for k, start in enumerate(START.numpy()):
        expected = _reference(start, sigma_start, sigmas[probe])
        np.testing.assert_allclose(paths[k, probe], expected, atol=1e-6, rtol=0)
        # the path ends on a data point: the posterior has collapsed
        assert np.linalg.norm(DATA.numpy() - paths[k, -1], axis=1).min() < 1e-9


def test_the_straight_chords_are_conditional_paths_and_the_true_paths_bend():
    result = flow_paths(DATA, START)
    s = result.sigmas[:, None]
    for k in range(len(START)):
        eps, x0 = START[k].numpy(), result.end[k]  # σ₀ = 1: the start is the noise itself
        np.testing.assert_allclose(result.eps[k], eps, atol=1e-12)
        np.testing.assert_allclose(result.straight[k], (1 - s) * x0 + s * eps, atol=1e-12)
        gap = np.linalg.norm(result.curved[k] - result.straight[k], axis=1).max()
        assert result.gap[k] == pytest.approx(gap, rel=1e-12) and gap > 0.01
        length = np.linalg.norm(np.diff(result.curved[k], axis=0), axis=1).sum()
        assert result.length_ratio[k] == pytest.approx(length / np.linalg.norm(eps - x0), rel=1e-12)
        assert result.length_ratio[k] > 1


def test_euler_steps_of_the_exact_velocity_approach_the_exact_endpoints():
    result = flow_paths(DATA, START)
    for n in (1, 3, 16):
        x = START.numpy().copy()
        grid = np.linspace(1.0, 0.0, n + 1)
        for sigma, nxt in itertools.pairwise(grid):
            x = x + (nxt - sigma) * np.stack([_velocity(row, sigma) for row in x])
        np.testing.assert_allclose(euler_endpoints(DATA, START, n), x, atol=1e-10)
    one = euler_endpoints(DATA, START, 1)  # one step from σ = 1 lands on the data's mean
    np.testing.assert_allclose(one, DATA.mean(0).expand(3, 2).numpy(), atol=1e-12)
    assert result.euler_error[-1] < result.euler_error[0]
    reached = result.steps_to_reach(0.05)
    assert reached is None or result.euler_error[list(result.euler_steps).index(reached)] < 0.05


def test_a_runs_vp_states_map_onto_the_flow_path():
    x0, eps = DATA[:2], START[:2]
    sigma = np.array([1.0, 0.5, 0.1])
    a = (1 - sigma) ** 2 / ((1 - sigma) ** 2 + sigma**2)  # ᾱ of equal SNR
    x_vp = torch.stack([(a[k] ** 0.5) * x0 + ((1 - a[k]) ** 0.5) * eps for k in range(3)])
    got_sigma, x_sigma = to_flow_coordinates(x_vp, a)
    np.testing.assert_allclose(got_sigma, sigma, atol=1e-12)
    for k in range(3):
        np.testing.assert_allclose(x_sigma[k], ((1 - sigma[k]) * x0 + sigma[k] * eps).numpy(), atol=1e-12)


def test_bad_inputs_are_refused_by_name():
    with pytest.raises(ValueError, match="share D"):
        integrate_exact(DATA, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="starting σ"):
        integrate_exact(DATA, START, 1.5)
    with pytest.raises(ValueError, match="Euler steps"):
        euler_endpoints(DATA, START, 0)


def test_the_cloud_view_draws_a_flow_runs_paths_and_hides_them_for_other_runs():
    from app_fixtures import FakeRequest, ensure_models

    from explorer.data import Dataset, exact_training_set
    from explorer.diffusion.sampler import sample
    from ui import cloud
    from ui.models import load_model
    from ui.state import keep_run

    ensure_models()
    for name, flow in (("exact-moons-flow", True), ("moons-eps", False)):
        with torch.no_grad():
            run = sample(load_model(name), sampler="ddim", eta=0.0, num_inference_steps=6, batch_size=8, seed=2)
        request = FakeRequest(f"flow-paths-{name}")
        keep_run(request, run.compact(), name)
        group, figure, sentence = cloud.flow_view(request)
        assert group["visible"] is flow
        if not flow:
            assert figure is None and sentence == ""
            continue
        names = {trace.name for trace in figure.data}
        assert (
            "straight training paths (1 − σ) x₀* + σ ε" in names and "exact paths of the marginal velocity u*" in names
        )
        # the exact paths start where the run started, on the flow path: x_σ = c(σ) x_t at its first σ
        drawn, paths = cloud.run_flow_paths(run.compact(), exact_training_set(Dataset.MOONS))
        a = float(run.settings.schedule.alphas_cumprod[run.settings.timesteps[0]])
        sigma = (1 - a) ** 0.5 / (a**0.5 + (1 - a) ** 0.5)
        first = run.compact().x_t[0].double().numpy() * np.sqrt((1 - sigma) ** 2 + sigma**2)
        np.testing.assert_allclose(paths.start, first, atol=1e-6)
        np.testing.assert_allclose(paths.sigmas[0], sigma, rtol=1e-12)
        assert not drawn.stochastic and drawn.steps == 6
        assert f"{np.median(paths.gap):.3g}" in sentence and "took 6 steps" in sentence
