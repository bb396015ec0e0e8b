"""The parameterization table: implied weights against float64 formulas written here, the measured target sizes
against their closed forms within sampling error, and the table's sentences following the measured numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.diffusion.denoiser import wrap
from explorer.diffusion.measured_table import MeasuredTable, ModelErrors, crossings, measure_table
from explorer.diffusion.parameterization import Prediction
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.teacher import teacher_force
from explorer.diffusion.weighting import flow_sigma, implied_weight, min_snr_weight, target_rms
from explorer.figures.weighting import table_figure
from explorer.figures.weighting_rows import hard_end, min_snr_sentence, table_rows
from tools.train import LossWeighting, loss_weights

ALPHA_BARS = np.array([1 - 1e-6, 0.9999, 0.99, 0.9, 0.5, 0.1, 1e-2, 1e-4, 4.04e-5, 1e-8])


def _draws(seed: int, a: float):
    """x₀, x̂₀, ε and the x_t they make ([64, 3] float64 each)."""
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn(64, 3, generator=generator, dtype=torch.float64)
    x0_hat = x0 + 0.3 * torch.randn(64, 3, generator=generator, dtype=torch.float64)
    eps = torch.randn(64, 3, generator=generator, dtype=torch.float64)
    x_t = a**0.5 * x0 + (1 - a) ** 0.5 * eps
    return x0, x0_hat, eps, x_t


@pytest.mark.parametrize("a", ALPHA_BARS)
def test_each_targets_error_is_its_implied_weight_times_the_x0_error(a):
    x0, x0_hat, eps, x_t = _draws(int(a * 1e6) % 1000, float(a))
    snr = a / (1 - a)
    # every prediction below is the one x̂₀ seen in another space (the same information)
    eps_hat = (x_t - a**0.5 * x0_hat) / (1 - a) ** 0.5
    v, v_hat = a**0.5 * eps - (1 - a) ** 0.5 * x0, a**0.5 * eps_hat - (1 - a) ** 0.5 * x0_hat
    sigma = 1 / (1 + snr**0.5)  # the flow path x = (1 − σ) x₀ + σ ε with the same SNR: ((1 − σ)/σ)² = SNR
    assert ((1 - sigma) / sigma) ** 2 == pytest.approx(snr, rel=1e-10)
    x_flow = x_t / (a**0.5 + (1 - a) ** 0.5)  # the VP x_t rescaled is that path's point
    torch.testing.assert_close(x_flow, (1 - sigma) * x0 + sigma * eps, rtol=1e-10, atol=1e-12)
    u, u_hat = eps - x0, (x_flow - x0_hat) / sigma  # x₀ = x − σ u
    torch.testing.assert_close(u_hat, eps_hat - x0_hat, rtol=1e-9, atol=1e-9)  # û = ε̂ − x̂₀, as the table converts

    x0_error = float(((x0 - x0_hat) ** 2).sum())
    expected = {
        Prediction.EPSILON: (float(((eps - eps_hat) ** 2).sum()), snr),
        Prediction.SAMPLE: (x0_error, 1.0),
        Prediction.V_PREDICTION: (float(((v - v_hat) ** 2).sum()), 1 + snr),
        Prediction.FLOW: (float(((u - u_hat) ** 2).sum()), 1 / sigma**2),
    }
    for target, (error, weight) in expected.items():
        assert implied_weight(target, snr) == pytest.approx(weight, rel=1e-10)
        assert error == pytest.approx(float(implied_weight(target, snr)) * x0_error, rel=1e-10), target
    assert float(flow_sigma(snr)) == pytest.approx(sigma, rel=1e-12)


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v_prediction"])
def test_min_snr_is_min_snr_gamma_on_the_x0_error_and_what_training_uses(prediction):
    schedule = Schedule.from_name("linear", 1000)
    timestep = torch.arange(1000)
    gamma = 5.0
    reference = np.minimum(schedule.snr, gamma)
    np.testing.assert_allclose(min_snr_weight(schedule.snr, gamma), reference, rtol=1e-15)
    trained = loss_weights(LossWeighting.MIN_SNR, Prediction(prediction), schedule, timestep, gamma).double().numpy()
    on_x0 = trained * implied_weight(Prediction(prediction), schedule.snr)  # the loss in x₀ terms
    np.testing.assert_allclose(on_x0, reference, rtol=1e-6)
    with pytest.raises(ValueError, match="gamma"):
        min_snr_weight(schedule.snr, 0.0)


def test_weights_at_the_extremes_of_snr():
    assert implied_weight("epsilon", 0.0) == 0 and implied_weight("v_prediction", 0.0) == 1
    assert implied_weight("flow_prediction", 0.0) == 1 and implied_weight("sample", np.inf) == 1
    assert np.isinf(implied_weight("epsilon", np.inf)) and np.isinf(implied_weight("flow_prediction", np.inf))
    with pytest.raises(ValueError, match="SNR"):
        implied_weight("epsilon", -1.0)
    with pytest.raises(ValueError, match="prediction type"):
        implied_weight("score", 1.0)


def _unit_data(count: int, seed: int = 0) -> torch.Tensor:
    """[count, 2] points with mean square exactly 1 per dimension (unit-variance data)."""
    points = torch.randn(count, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    points = points * torch.tensor([2.0, 0.5], dtype=torch.float64)  # anisotropic before scaling
    return (points / points.pow(2).mean().sqrt()).float()


def _measured(x0: torch.Tensor, timesteps, seed: int = 0) -> MeasuredTable:
    schedule = Schedule.from_name("linear", 1000)
    half = wrap(lambda x, t: 0.5 * x, prediction="sample", schedule=schedule, sample_shape=(2,), name="half")
    noise = wrap(lambda x, t: torch.tanh(x), prediction="epsilon", schedule=schedule, sample_shape=(2,), name="tanh")
    result = teacher_force([half, noise], x0=x0, timesteps=np.asarray(timesteps), seed=seed)
    return measure_table(result, schedule)


def test_measured_target_sizes_match_their_closed_forms_within_sampling_error():
    x0 = _unit_data(16384)
    values = x0.numel()
    table = _measured(x0, [0, 9, 99, 299, 499, 799, 999])
    a = Schedule.from_name("linear", 1000).alphas_cumprod[table.timesteps]
    m2 = float(x0.double().pow(2).mean())
    assert m2 == pytest.approx(1.0, rel=1e-6) and table.m2 == pytest.approx(m2, rel=1e-6)
    tolerance = 5 * (2 / values) ** 0.5  # five standard errors of an RMS near 1 (each mean square has s.e. ≤ 2/√N)
    np.testing.assert_allclose(table.rms[Prediction.EPSILON], 1.0, atol=tolerance)
    np.testing.assert_allclose(table.rms[Prediction.SAMPLE], m2**0.5, rtol=1e-6)  # x₀ is the data itself
    np.testing.assert_allclose(table.rms[Prediction.V_PREDICTION], np.sqrt(a + (1 - a) * m2), atol=tolerance)
    np.testing.assert_allclose(table.rms[Prediction.V_PREDICTION], 1.0, atol=tolerance)  # unit variance: v's RMS → 1
    np.testing.assert_allclose(table.rms[Prediction.FLOW], np.sqrt(1 + m2), atol=tolerance)
    for target in Prediction:  # and the module's closed forms are those formulas
        np.testing.assert_allclose(table.closed_rms[target], target_rms(target, a, m2), rtol=1e-12)
    np.testing.assert_allclose(target_rms("v_prediction", a, 0.25), np.sqrt(a + 0.25 * (1 - a)), rtol=1e-12)


def test_measured_errors_in_every_space_are_the_weights_times_the_x0_error():
    x0 = _unit_data(512, seed=3)
    table = _measured(x0, [0, 49, 499, 999])
    for model in table.models:
        for target in Prediction:
            expected = implied_weight(target, table.snr) * model.errors[Prediction.SAMPLE]
            np.testing.assert_allclose(model.errors[target], expected, rtol=2e-3)
    # the x₀-prediction model "half" outputs 0.5 x_t: its x₀ error, written here, float64
    a = Schedule.from_name("linear", 1000).alphas_cumprod[table.timesteps]
    assert table.model("half").errors[Prediction.SAMPLE][0] < table.model("half").errors[Prediction.SAMPLE][-1]
    assert a[0] > a[-1]


def test_crossings_of_two_curves():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    assert crossings(t, np.array([1.0, 2.0, 4.0, 8.0]), np.full(4, 3.0)) == pytest.approx([2 + np.log(1.5) / np.log(2)])
    assert crossings(t, np.full(4, 1.0), np.full(4, 2.0)) == []
    assert len(crossings(t, np.array([1.0, 3.0, 1.0, 3.0]), np.full(4, 2.0))) == 3


def _synthetic(eps_low_hard: bool) -> MeasuredTable:
    """A hand-made table: ε model hard at low t (or at high t when flipped), x₀ model the other way."""
    steps = np.array([0, 99, 499, 999])
    schedule = Schedule.from_name("linear", 1000)
    snr = schedule.snr[steps]
    ones = np.ones(4)
    rising, falling = np.array([0.001, 0.01, 0.1, 1.0]), np.array([1.0, 0.1, 0.01, 0.001])

    def model(name, target, own):
        x0 = own / implied_weight(target, snr)
        return ModelErrors(name, target, {t: implied_weight(t, snr) * x0 for t in Prediction})

    eps_own = falling if eps_low_hard else rising
    rms = {t: ones for t in Prediction}
    return MeasuredTable(
        steps,
        snr,
        schedule.alphas_cumprod[steps],
        1.0,
        100,
        rms,
        rms,
        (
            model("e", Prediction.EPSILON, eps_own),
            model("x", Prediction.SAMPLE, rising),
            model("m", Prediction.EPSILON, falling),
        ),
    )


def test_the_rows_follow_the_numbers_not_a_script():
    low, high = _synthetic(True), _synthetic(False)
    assert hard_end(low, "e") == "low t" and hard_end(high, "e") == "high t" and hard_end(low, "x") == "high t"
    networks = {Prediction.EPSILON: "e", Prediction.SAMPLE: "x"}
    first = table_rows(low, networks)[0].measured
    second = table_rows(high, networks)[0].measured
    assert "the low-t end is hard" in first and "the high-t end is hard" in second
    ratio = low.model("e").errors[Prediction.SAMPLE][0] / low.model("x").errors[Prediction.SAMPLE][0]
    assert f"{ratio:.3g}× x's at t = 1" in first
    sentence = min_snr_sentence(low, "e", "m", 5.0)
    assert "SNR > 5" in sentence and "SNR ≤ 5" in sentence
    rows = table_rows(low, networks, min_snr=("e", "m", 5.0))
    assert [r.name for r in rows][-1] == "ε with min-SNR-5" and len(rows) == 5
    figure = table_figure(low, gamma=5.0, min_snr=("e", "m"))
    assert any(trace.name == "min-SNR-5: min(SNR, 5)" for trace in figure.data)
