"""The fourth prediction on every trajectory: û, the rectified-flow velocity u = ε − x₀ on x_σ = (1 − σ) x₀ + σ ε.

Every run records û beside ε̂, x̂₀ and v̂ (converted with the step's own ᾱ, or the model's own output for a flow
model), and a VP ε-model and a flow model given the same noise at matched SNR start from the same point in the VP view
and, when both are the exact denoiser of one set, follow the same trajectory. References are float64 formulas written
here (the posterior mean of a finite set, x_σ from x₀ and ε), not the explorer's converters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import explorer
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.views import STEP_VIEWS, view_of

T = 100
DATA = torch.tensor([[-1.0, 0.5], [1.2, -0.3], [0.1, 1.4], [-0.6, -1.1]], dtype=torch.float64)


def _linear() -> Schedule:
    return Schedule.from_name("linear", T, beta_start=1e-3, beta_end=0.1)


def _matched_sigmas(schedule: Schedule) -> np.ndarray:
    """σ of equal SNR to each ᾱ_t: (1 − σ)²/σ² = ᾱ/(1 − ᾱ), i.e. σ = √(1−ᾱ) / (√ᾱ + √(1−ᾱ)) (float64, ascending)."""
    a = schedule.alphas_cumprod
    return np.sqrt(1 - a) / (np.sqrt(a) + np.sqrt(1 - a))


def _posterior_mean(x_t: torch.Tensor, a: float) -> torch.Tensor:
    """E[x₀ | x_t] for x₀ uniform on DATA and x_t = √a x₀ + √(1−a) ε: softmax of −‖x_t − √a x_n‖²/(2(1−a))."""
    d2 = ((x_t[:, None, :] - math.sqrt(a) * DATA[None]) ** 2).sum(-1)  # [B, N]
    return torch.softmax(-d2 / (2 * (1 - a)), dim=1) @ DATA


def _exact_eps(schedule: Schedule):
    def fn(x_t: torch.Tensor, timestep) -> torch.Tensor:
        a = float(schedule.alphas_cumprod[int(timestep)])
        x = x_t.double()
        return ((x - math.sqrt(a) * _posterior_mean(x, a)) / math.sqrt(1 - a)).to(x_t.dtype)

    return fn


def _exact_velocity(sigmas: np.ndarray):
    """u*(x_σ) = (x_σ − E[x₀ | x_σ]) / σ, called in the explorer's convention: the VP point x_t = x_σ / c(σ)."""

    def fn(x_t: torch.Tensor, timestep) -> torch.Tensor:
        sigma = float(sigmas[int(timestep)])
        c = math.sqrt((1 - sigma) ** 2 + sigma**2)
        x_sigma = x_t.double() * c
        # the same set seen on the flow path: x_σ = (1 − σ) x_n + σ ε, so the weights use (1 − σ) x_n and σ²
        d2 = ((x_sigma[:, None, :] - (1 - sigma) * DATA[None]) ** 2).sum(-1)
        x0 = torch.softmax(-d2 / (2 * sigma**2), dim=1) @ DATA
        return ((x_sigma - x0) / sigma).to(x_t.dtype)

    return fn


def test_the_flow_view_is_the_fourth_prediction_and_the_flow_models_own():
    names = [view.name for view in STEP_VIEWS]
    assert names == ["x_t", "x0", "eps", "v", "u", "mean", "noise"]
    assert view_of("flow_prediction").name == "u" and view_of("epsilon").name == "eps"
    u = STEP_VIEWS[4]
    assert u.title_for("flow_prediction") == "û (±4) predicted" and u.title_for("epsilon") == "û (±4) from ε̂"
    assert STEP_VIEWS[0].title_for("flow_prediction") == "x_t"  # a state, not a prediction: no label


def test_an_eps_model_and_a_flow_model_given_the_same_noise_at_matched_snr_start_from_the_same_point():
    """The flow model runs on the σ of equal SNR to the ε-model's ᾱ: with the same seed, step 0 is the same VP point,
    and both exact denoisers of one set follow the same trajectory with the same four predictions."""
    linear = _linear()
    sigmas = _matched_sigmas(linear)
    flow_schedule = Schedule.from_flow_sigmas(sigmas)
    np.testing.assert_allclose(flow_schedule.alphas_cumprod, linear.alphas_cumprod, rtol=1e-9, atol=1e-15)

    eps_model = explorer.wrap(_exact_eps(linear), prediction="epsilon", schedule=linear, sample_shape=(2,))
    flow_model = explorer.wrap(
        _exact_velocity(sigmas), prediction="flow_prediction", schedule=flow_schedule, sample_shape=(2,)
    )
    options = {"sampler": "ddim", "eta": 0.0, "num_inference_steps": 10, "batch_size": 8, "seed": 5}
    eps_run, flow_run = explorer.sample(eps_model, **options), explorer.sample(flow_model, **options)

    # The same noise at matched SNR: the flow point x_σ = (1 − σ) x₀ + σ ε of any x₀ is, in the VP view, x_σ / c(σ),
    # the ε-model's x_t = √ᾱ x₀ + √(1−ᾱ) ε; at the first step both are the run's noise itself (up to √ᾱ_T x₀).
    t = eps_run[0].timestep
    assert flow_run[0].timestep == t
    torch.testing.assert_close(flow_run[0].x_t, eps_run[0].x_t, rtol=0, atol=0)
    sigma, a = float(sigmas[t]), float(linear.alphas_cumprod[t])
    x0, noise = DATA[[0, 1, 2, 3, 0, 1, 2, 3]], eps_run[0].x_t.double()
    x_sigma = (1 - sigma) * x0 + sigma * noise
    x_vp = math.sqrt(a) * x0 + math.sqrt(1 - a) * noise
    torch.testing.assert_close(x_sigma / math.sqrt((1 - sigma) ** 2 + sigma**2), x_vp, rtol=0, atol=1e-12)

    for mine, theirs in zip(eps_run, flow_run, strict=True):
        torch.testing.assert_close(theirs.x_t, mine.x_t, rtol=1e-5, atol=1e-5)
        for name in ("eps", "x0", "v", "u"):
            torch.testing.assert_close(getattr(theirs, name), getattr(mine, name), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(theirs.u, theirs.model_output, rtol=0, atol=0)  # the flow model's own space
        torch.testing.assert_close(mine.eps, mine.model_output, rtol=0, atol=0)
    torch.testing.assert_close(flow_run.samples, eps_run.samples, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v_prediction", "flow_prediction"])
def test_every_run_records_u_as_eps_minus_x0_and_the_compact_record_keeps_it(prediction):
    """û = ε̂ − x̂₀ whatever the model predicts (float64 here), and the compact record gives it back."""
    linear = _linear()

    def network(x_t: torch.Tensor, timestep) -> torch.Tensor:
        return torch.tanh(x_t) * 0.8 + 0.05 * float(timestep) / T

    model = explorer.wrap(network, prediction=prediction, schedule=linear, sample_shape=(2,))
    run = explorer.sample(model, num_inference_steps=6, batch_size=5, seed=1)
    compact = run.compact()
    for k, step in enumerate(run):
        a = float(linear.alphas_cumprod[step.timestep])
        x0, eps = step.x0.double(), step.eps.double()
        torch.testing.assert_close(step.u.double(), eps - x0, rtol=1e-5, atol=1e-5)
        # and ε̂, x̂₀ are the same prediction at x_t: x_t = √ᾱ x̂₀ + √(1−ᾱ) ε̂
        torch.testing.assert_close(math.sqrt(a) * x0 + math.sqrt(1 - a) * eps, step.x_t.double(), rtol=0, atol=1e-5)
        # û is derived from the stored float16 ε̂ and x̂₀: off by at most their rounding (2⁻¹¹ relative each)
        bound = (eps.abs() + x0.abs()) * 2.0**-11 + 1e-6
        assert ((compact.view("u", k).double() - step.u.double()).abs() <= bound).all()
    own = compact.to_trajectory(len(run) - 1)
    torch.testing.assert_close(own[2].model_output, compact.view(view_of(prediction).name, 2))
    assert compact.u.dtype == torch.float16 and compact.u.shape == compact.eps.shape


def test_the_compact_size_is_what_it_holds_and_u_costs_nothing():
    """û is derived (ε̂ − x̂₀), so the record holds x_t in float32 and five float16 views per step, as before."""
    model = explorer.wrap(lambda x, t: x * 0, prediction="epsilon", schedule=_linear(), sample_shape=(2,))
    compact = explorer.sample(model, num_inference_steps=4, batch_size=3, seed=0).compact()
    assert explorer.diffusion.trajectory.compact_nbytes(4, 3, (2,)) == compact.nbytes
    per_state = 3 * 2
    assert compact.nbytes == 4 * per_state * (4 + 2 * 5) + 4 * 3 * 4 * 2 + per_state * 4 + 4 * 8 * 2


def test_the_exact_velocity_of_the_training_set_is_offered_for_flow_runs():
    """`exact-moons-flow`: u*(x_σ) = (x_σ − E[x₀ | x_σ]) / σ of the moons training set on moons-flow's schedule."""
    from app_fixtures import ensure_models

    ensure_models()
    from explorer.data import Dataset, exact_training_set
    from ui.models import dataset_of, load_model, model_choices

    assert {"exact-moons", "exact-moons-flow", "exact-ring-flow"} <= set(model_choices())
    assert dataset_of("exact-moons-flow") is Dataset.MOONS and dataset_of("exact-nothing-flow") is None
    exact, network = load_model("exact-moons-flow"), load_model("moons-flow")
    assert exact.prediction is explorer.Prediction.FLOW and network.prediction is explorer.Prediction.FLOW
    np.testing.assert_array_equal(exact.schedule.alphas_cumprod, network.schedule.alphas_cumprod)

    data = exact_training_set(Dataset.MOONS).double()  # [N, 2]
    x_t = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for timestep in (50, 400, 900):
        sigma = (timestep + 1) / 1000  # the flow model's training grid σ = t/T, paper t = timestep + 1
        x_sigma = x_t * math.sqrt((1 - sigma) ** 2 + sigma**2)
        d2 = ((x_sigma[:, None, :] - (1 - sigma) * data[None]) ** 2).sum(-1)
        expected = (x_sigma - torch.softmax(-d2 / (2 * sigma**2), dim=1) @ data) / sigma
        got = exact.predict(x_t, timestep).prediction.double()
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
