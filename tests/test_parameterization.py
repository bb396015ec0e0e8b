"""ε ⇄ x₀ ⇄ v: round trips, agreement with diffusers' own conversions, and undefined points refused."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer import Prediction, Schedule, convert
from explorer.diffusion.parameterization import v_from_x0_eps

PAIRS = list(itertools.permutations(Prediction, 2))


def noisy_batch(shape: tuple[int, ...], a: torch.Tensor, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    view = a.reshape((-1,) + (1,) * (len(shape) - 1))
    x_t = view.sqrt() * x0 + (1 - view).sqrt() * eps
    v = view.sqrt() * eps - (1 - view).sqrt() * x0
    truth = {Prediction.SAMPLE: x0, Prediction.EPSILON: eps, Prediction.V_PREDICTION: v, Prediction.FLOW: eps - x0}
    torch.testing.assert_close(v_from_x0_eps(x0, eps, a), v)
    return x_t, truth


@pytest.mark.parametrize(("source", "target"), PAIRS)
@pytest.mark.parametrize("shape", [(4, 2), (3, 1, 5, 5), (2, 3, 4)])
def test_every_conversion_recovers_the_truth(source: Prediction, target: Prediction, shape: tuple) -> None:
    a = torch.tensor([0.999, 0.5, 0.01, 1e-4][: shape[0]], dtype=torch.float64)
    x_t, truth = noisy_batch(shape, a)
    out = convert(truth[source], source, target, x_t, a)
    assert out.shape == x_t.shape
    torch.testing.assert_close(out, truth[target], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_round_trips_and_scalar_alpha(source: Prediction, target: Prediction) -> None:
    x_t, truth = noisy_batch((5, 3), torch.full((5,), 0.3, dtype=torch.float64))
    there = convert(truth[source], source, target, x_t, 0.3)
    back = convert(there, target, source, x_t, 0.3)
    torch.testing.assert_close(back, truth[source], rtol=1e-12, atol=1e-12)


def test_matches_diffusers_prediction_handling() -> None:
    """diffusers' DDPMScheduler.step turns ε and v outputs into x̂₀ with its own formulas."""
    from diffusers import DDPMScheduler

    schedule = Schedule.from_name("linear", 1000)
    for kind in (Prediction.EPSILON, Prediction.V_PREDICTION):
        scheduler = DDPMScheduler(prediction_type=kind.value, clip_sample=False)
        g = torch.Generator().manual_seed(1)
        x_t, output = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
        for t in (0, 500, 999):
            theirs = scheduler.step(output, t, x_t, generator=g).pred_original_sample
            ours = convert(output, kind, "sample", x_t, float(schedule.alphas_cumprod[t]))
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_matches_diffusers_get_velocity() -> None:
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler()
    schedule = Schedule.from_name("linear", 1000)
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    t = torch.tensor([0, 400, 999])
    a = torch.from_numpy(schedule.alphas_cumprod[t.numpy()])
    torch.testing.assert_close(v_from_x0_eps(x0, eps, a), scheduler.get_velocity(x0, eps, t), rtol=1e-5, atol=1e-5)


@settings(max_examples=80, deadline=None)
@given(
    a=st.floats(1e-6, 1 - 1e-6),
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
    pair=st.sampled_from(PAIRS),
)
def test_property_round_trip_any_shape(a: float, shape: tuple, pair: tuple) -> None:
    source, target = pair
    x_t, truth = noisy_batch(shape, torch.full((shape[0],), a, dtype=torch.float64), seed=3)
    back = convert(convert(truth[source], source, target, x_t, a), target, source, x_t, a)
    torch.testing.assert_close(back, truth[source], rtol=1e-6, atol=1e-6 / a)


def test_epsilon_to_x0_is_refused_where_alpha_bar_is_zero() -> None:
    x_t = torch.randn(2, 3)
    with pytest.raises(ValueError, match="undefined where ᾱ_t = 0"):
        convert(torch.randn(2, 3), "epsilon", "sample", x_t, torch.tensor([0.5, 0.0]))
    with pytest.raises(ValueError, match="undefined where ᾱ_t = 0"):
        convert(torch.randn(2, 3), "epsilon", "v_prediction", x_t, 0.0)
    # v and x₀ stay defined at ᾱ = 0: x̂₀ = −v, ε = x_t.
    v = torch.randn(2, 3)
    torch.testing.assert_close(convert(v, "v_prediction", "sample", x_t, 0.0), -v)
    torch.testing.assert_close(convert(v, "v_prediction", "epsilon", x_t, 0.0), x_t)


def test_bad_arguments_are_refused() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="epsilon, sample, v_prediction, flow_prediction"):
        convert(x, "noise", "sample", x, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        convert(x, "epsilon", "sample", x, 1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        convert(x, "epsilon", "sample", x, float("nan"))
    with pytest.raises(ValueError, match="same shape"):
        convert(torch.zeros(2, 4), "epsilon", "sample", x, 0.5)
    with pytest.raises(ValueError, match="undefined where ᾱ_t = 1"):
        convert(x, "sample", "epsilon", x, 1.0)


def test_the_flow_velocity_is_that_of_the_equal_snr_flow_point() -> None:
    """u at x_t (ᾱ) is the velocity of x_σ = (1−σ) x₀ + σ ε at σ = √(1−ᾱ)/(√ᾱ + √(1−ᾱ)): x_σ = x_t/(√ᾱ + √(1−ᾱ))."""
    a = torch.tensor([0.999, 0.5, 0.01, 0.0], dtype=torch.float64)
    x_t, truth = noisy_batch((4, 3), a)
    sigma = ((1 - a).sqrt() / (a.sqrt() + (1 - a).sqrt())).reshape(-1, 1)
    x_sigma = (1 - sigma) * truth[Prediction.SAMPLE] + sigma * truth[Prediction.EPSILON]
    torch.testing.assert_close(x_sigma, x_t / (a.sqrt() + (1 - a).sqrt()).reshape(-1, 1))
    x0 = convert(truth[Prediction.FLOW], Prediction.FLOW, Prediction.SAMPLE, x_t, a)
    torch.testing.assert_close(x0, x_sigma - sigma * truth[Prediction.FLOW])  # x₀ = x_σ − σ u, even at ᾱ = 0
    with pytest.raises(ValueError, match="undefined where ᾱ_t = 0"):
        convert(truth[Prediction.EPSILON], Prediction.EPSILON, Prediction.FLOW, x_t, a)


def test_prediction_enum_values_are_diffusers_strings() -> None:
    assert [p.value for p in Prediction] == ["epsilon", "sample", "v_prediction", "flow_prediction"]
    assert Prediction.parse(" V_Prediction ") is Prediction.V_PREDICTION
    assert Prediction.EPSILON == "epsilon"
