"""Teacher forcing and the measured table with a flow network beside the ε, x₀ and v networks, at matched SNR.

Every expectation is computed here in float64 from the flow path x_σ = (1 − σ) x₀ + σ ε itself (σ = (i + 1)/T for
the flow model's 0-based timestep i, its input the VP point x_σ / √((1 − σ)² + σ²)), not with the explorer's
converters.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.data import Dataset, exact_training_set, point_set, spread_subset
from explorer.diffusion.measured_table import measure_table
from explorer.diffusion.parameterization import Prediction
from explorer.diffusion.teacher import teacher_force
from explorer.figures.weighting_rows import table_rows
from ui.models import load_model

REFERENCE_T = np.array([0, 9, 99, 249, 499, 749, 899, 999])  # 0-based, on moons-eps's linear schedule


def _flow_level(log_snr: np.ndarray, T: int = 1000) -> np.ndarray:
    """The flow grid's 0-based timestep of nearest log SNR, λ(σ) = 2 log((1 − σ)/σ), σ = (i + 1)/T, written here."""
    sigma = np.arange(1, T + 1, dtype=np.float64) / T
    with np.errstate(divide="ignore"):
        levels = 2 * np.log((1 - sigma) / sigma)  # −inf at σ = 1
    return np.abs(levels[None, :] - log_snr[:, None]).argmin(axis=1)


@pytest.fixture(scope="module")
def forced():
    x0 = spread_subset(point_set(Dataset.MOONS), 64)
    models = [load_model(name) for name in ("moons-eps", "moons-x0", "moons-v", "moons-flow")]
    return x0, models, teacher_force(models, x0=x0, timesteps=REFERENCE_T, seed=3)


def test_the_flow_networks_u_hat_and_its_x0_hat_equal_a_float64_computation_on_the_flow_path(forced):
    x0, models, result = forced
    flow_model, flow = models[3], result.models[3]
    assert flow.prediction is Prediction.FLOW
    own = _flow_level(models[0].schedule.log_snr[REFERENCE_T])
    np.testing.assert_array_equal(flow.timesteps, own)
    for k, i in enumerate(own):
        sigma = (i + 1) / 1000
        eps = result.eps[k].double()  # the shared noise of level k
        x_sigma = (1 - sigma) * x0.double() + sigma * eps
        x_vp = x_sigma / np.sqrt((1 - sigma) ** 2 + sigma**2)
        with torch.no_grad():
            u_hat = flow_model.module(x_vp.float(), torch.full((x0.shape[0],), int(i))).double()
        torch.testing.assert_close(flow.u[k].double(), u_hat, rtol=1e-5, atol=1e-5)
        x0_hat = x_sigma - sigma * u_hat  # x₀ = x_σ − σ u
        torch.testing.assert_close(flow.x0[k].double(), x0_hat, rtol=1e-5, atol=1e-5)
        u = eps - x0.double()
        assert flow.u_mse[k] == pytest.approx(float(((u_hat - u) ** 2).mean()), rel=1e-4)
        # the implied weight: its x₀ error is its u error times σ², in the same numbers
        assert flow.x0_mse[k] == pytest.approx(sigma**2 * flow.u_mse[k], rel=1e-4)
    # the truth's u is ε − x₀ at every level
    torch.testing.assert_close(result.u, result.eps - x0, rtol=0, atol=1e-6)


def test_every_network_converted_to_u_obeys_the_flow_weight_at_its_own_level(forced):
    _, models, result = forced
    for model, forcing in zip(models, result.models, strict=True):
        a = forcing.alphas_cumprod
        sigma = np.sqrt(1 - a) / (np.sqrt(a) + np.sqrt(1 - a))  # the flow σ of the same SNR, ((1−σ)/σ)² = ᾱ/(1−ᾱ)
        finite = np.isfinite(forcing.x0_mse) & np.isfinite(forcing.u_mse)
        assert finite.sum() >= len(REFERENCE_T) - 1, model.name  # ε from ᾱ = 0 alone gives no x̂₀
        np.testing.assert_allclose(forcing.u_mse[finite], forcing.x0_mse[finite] / sigma[finite] ** 2, rtol=2e-3)


def test_the_exact_flow_model_has_near_zero_error_against_the_exact_velocity():
    """exact-moons-flow predicts u*(x_σ) = (x_σ − E[x₀|x_σ]) / σ: written here as a softmax over the training set."""
    data = exact_training_set(Dataset.MOONS).double()  # [N, 2]
    x0 = spread_subset(point_set(Dataset.MOONS), 32)
    model = load_model("exact-moons-flow")
    result = teacher_force([model], x0=x0, timesteps=[0, 99, 499, 899, 999], seed=5)
    forcing = result.models[0]
    for k, i in enumerate(forcing.timesteps):
        sigma = (int(i) + 1) / 1000
        x_sigma = (1 - sigma) * x0.double() + sigma * result.eps[k].double()
        if sigma < 1:
            logits = -((x_sigma[:, None, :] - (1 - sigma) * data[None]) ** 2).sum(-1) / (2 * sigma**2)  # [B, N]
            posterior_mean = torch.softmax(logits, dim=1) @ data
        else:  # σ = 1: x_σ is pure noise, every point equally likely
            posterior_mean = data.mean(0).expand_as(x_sigma)
        u_star = (x_sigma - posterior_mean) / sigma
        torch.testing.assert_close(forcing.u[k].double(), u_star, rtol=1e-4, atol=1e-4)


def test_the_measured_table_has_a_flow_row_about_the_flow_network(forced):
    _, models, result = forced
    table = measure_table(result, models[0].schedule)
    flow = table.model("moons-flow")
    assert flow.target is Prediction.FLOW
    np.testing.assert_allclose(flow.own(), result.models[3].u_mse[np.argsort(REFERENCE_T)], rtol=1e-6)
    u = (result.eps - result.x0).double()
    np.testing.assert_allclose(table.rms[Prediction.FLOW], u.pow(2).reshape(8, -1).mean(1).sqrt().numpy(), rtol=1e-6)
    networks = {Prediction(m.prediction.value): m.name for m in models}
    row = table_rows(table, networks)[3]
    assert row.name == "flow velocity u" and "moons-flow's own MSE" in row.measured
    relative = flow.own() / table.rms[Prediction.FLOW] ** 2
    assert f"{relative[0]:.3g} at t = 1" in row.measured
    ratio = flow.errors[Prediction.SAMPLE][-1] / table.model("moons-x0").errors[Prediction.SAMPLE][-1]
    assert f"{ratio:.3g}× moons-x0's at t = 1000" in row.measured


@pytest.mark.parametrize("a", [1 - 1e-6, 0.999, 0.5, 1e-2, 4.04e-5])
def test_the_flow_weight_identity_holds_to_1e_10_in_float64_through_the_converters(a):
    """‖u − û‖² = ‖x₀ − x̂₀‖² / σ², σ = √(1−ᾱ)/(√ᾱ + √(1−ᾱ)): û of a flow prediction, x̂₀ converted from it."""
    from explorer.diffusion.parameterization import convert

    generator = torch.Generator().manual_seed(7)
    x0, eps = (torch.randn(256, 2, generator=generator, dtype=torch.float64) for _ in range(2))
    u_hat = (eps - x0) + 0.2 * torch.randn(256, 2, generator=generator, dtype=torch.float64)  # a flow prediction
    x_t = a**0.5 * x0 + (1 - a) ** 0.5 * eps
    x0_hat = convert(u_hat, "flow_prediction", "sample", x_t, a)
    assert x0_hat.dtype == torch.float64
    sigma = (1 - a) ** 0.5 / (a**0.5 + (1 - a) ** 0.5)
    x_sigma = (1 - sigma) * x0 + sigma * eps  # the same point on the flow path: x_t / (√ᾱ + √(1−ᾱ))
    torch.testing.assert_close(x0_hat, x_sigma - sigma * u_hat, rtol=1e-10, atol=1e-12)  # x₀ = x_σ − σ u
    u_error = float(((eps - x0 - u_hat) ** 2).sum())
    assert u_error == pytest.approx(float(((x0 - x0_hat) ** 2).sum()) / sigma**2, rel=1e-10)
