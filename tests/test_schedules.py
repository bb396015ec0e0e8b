"""Schedules against diffusers (which nobody here wrote), identities, edges and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer import Schedule, TimestepSpacing, inference_timesteps, paper_t, timestep_of
from explorer.diffusion.schedules import (
    MAX_TIMESTEPS,
    BetaSchedule,
    current_scheduler_config,
    rescaled_to_zero_terminal_snr,
)

SIZES = (2, 10, 1000, 4000)
CASES = [(n, T, z) for n in reference.SCHEDULE_NAMES for T in SIZES for z in (False, True)]


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-30)))


# --- parity with diffusers' DDPMScheduler ------------------------------------------------------


@pytest.mark.parametrize(("name", "T", "zero_snr"), CASES)
def test_betas_and_alphas_cumprod_match_diffusers(name: str, T: int, zero_snr: bool) -> None:
    ours = Schedule.from_name(name, T, rescale_zero_terminal_snr=zero_snr)
    f32 = reference.float32_scheduler(name, T, zero_snr)
    f64 = reference.float64_scheduler(name, T, zero_snr)
    assert ours.betas.shape == (T,) and ours.betas.dtype == np.float64

    # Against diffusers exactly as users run it: float32 rounding, and its float32 zero-SNR rescale cancels
    # (seen up to 1e-2 relative on the cosine schedule), so that case is compared in float64 below.
    if not zero_snr:
        assert relative_error(ours.betas, f32.betas.double().numpy()) < 1e-6
    np.testing.assert_allclose(ours.alphas_cumprod, f32.alphas_cumprod.double().numpy(), rtol=0, atol=5e-6)

    # Against diffusers' own algorithm evaluated in float64.
    assert relative_error(ours.betas, f64.betas.numpy()) < 1e-10
    np.testing.assert_allclose(ours.alphas_cumprod, f64.alphas_cumprod.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(ours.alphas, f64.alphas.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize(("name", "T", "zero_snr"), CASES)
def test_posterior_variance_matches_diffusers_get_variance(name: str, T: int, zero_snr: bool) -> None:
    ours = Schedule.from_name(name, T, rescale_zero_terminal_snr=zero_snr)
    theirs = reference.posterior_variance(reference.float64_scheduler(name, T, zero_snr))
    # diffusers clamps β̃ at 1e-20 before returning it; ours keeps the exact 0 at t = 1.
    assert ours.posterior_variance[0] == 0.0 and theirs[0] == 1e-20
    assert relative_error(ours.posterior_variance[1:], theirs[1:]) < 1e-9
    # Against float32 diffusers: 1 − ᾱ_t cancels near t = 1 in float32, so allow its rounding there.
    theirs32 = reference.posterior_variance(reference.float32_scheduler(name, T, zero_snr))
    np.testing.assert_allclose(ours.posterior_variance[1:], theirs32[1:], rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize(("name", "T", "zero_snr"), CASES)
def test_posterior_mean_coefficients_match_ddpm_step(name: str, T: int, zero_snr: bool) -> None:
    ours = Schedule.from_name(name, T, rescale_zero_terminal_snr=zero_snr)
    coef_x0, coef_xt = reference.posterior_mean_coefficients(reference.float64_scheduler(name, T, zero_snr))
    np.testing.assert_allclose(ours.posterior_mean_coef_x0, coef_x0, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(ours.posterior_mean_coef_xt, coef_xt, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("spacing", list(TimestepSpacing))
@pytest.mark.parametrize(("T", "steps"), [(1000, 1), (1000, 7), (1000, 50), (1000, 333), (1000, 1000), (10, 3), (2, 2)])
def test_inference_timesteps_match_diffusers_set_timesteps(spacing: TimestepSpacing, T: int, steps: int) -> None:
    for scheduler in (
        reference.float32_scheduler("linear", T, False, timestep_spacing=spacing.value),
        reference.ddim_scheduler("linear", T, False, timestep_spacing=spacing.value),
    ):
        scheduler.set_timesteps(steps)
        np.testing.assert_array_equal(inference_timesteps(T, steps, spacing), scheduler.timesteps.numpy())


def test_leading_spacing_with_50_steps_starts_at_980() -> None:
    assert inference_timesteps(1000, 50, "leading")[0] == 980
    assert inference_timesteps(1000, 50, "trailing")[0] == 999
    assert inference_timesteps(1000, 50, "linspace")[0] == 999


def test_from_diffusers_config_reads_the_cifar10_checkpoint_config() -> None:
    import json
    from pathlib import Path

    config = json.loads((Path(__file__).parent / "data" / "ddpm-cifar10-32.scheduler-config.json").read_text())
    schedule = Schedule.from_diffusers_config(config)
    np.testing.assert_array_equal(schedule.betas, Schedule.from_name("linear", 1000).betas)
    trained = Schedule.from_diffusers_config({"num_train_timesteps": 3, "trained_betas": [0.1, 0.2, 0.3]})
    np.testing.assert_allclose(trained.betas, [0.1, 0.2, 0.3])
    zsnr = Schedule.from_diffusers_config({"beta_schedule": "scaled_linear", "rescale_betas_zero_snr": True})
    assert zsnr.terminal_snr_is_zero


EARLY_DDPM = {  # the shape of scheduler_config.json files diffusers 0.0.x wrote (GaussianDDPMScheduler)
    "_class_name": "GaussianDDPMScheduler",
    "timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "variance_type": "fixed_small",
    "clip_predicted_image": True,
}


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
        {"beta_schedule": "squaredcos_cap_v2"},
        {"tensor_format": "pt", "timestep_values": None},  # other 0.0.x keys: ignored, as diffusers ignores them
    ],
)
def test_early_format_config_is_read_as_diffusers_reads_it(variant: dict) -> None:
    from diffusers import DDPMScheduler

    old = {**EARLY_DDPM, **variant}
    theirs = DDPMScheduler.from_config(old)  # diffusers 0.42: drops `timesteps`, uses T = 1000
    ours = Schedule.from_diffusers_config(old)
    np.testing.assert_allclose(ours.alphas_cumprod, theirs.alphas_cumprod.double().numpy(), rtol=2e-5, atol=1e-7)
    current = current_scheduler_config(old)
    assert current["_class_name"] == "DDPMScheduler" and current["num_train_timesteps"] == 1000
    assert current["clip_sample"] is True and "timesteps" not in current and "clip_predicted_image" not in current
    assert old["_class_name"] == "GaussianDDPMScheduler"  # the argument is left alone


def test_early_format_keys_mean_what_they_said_and_new_keys_win() -> None:
    from diffusers import DDPMScheduler

    short = current_scheduler_config({**EARLY_DDPM, "timesteps": 500, "clip_predicted_image": False})
    assert Schedule.from_diffusers_config(short).num_train_timesteps == 500 and short["clip_sample"] is False
    # what diffusers builds once the old keys carry today's names
    theirs = DDPMScheduler.from_config(short)
    np.testing.assert_allclose(
        Schedule.from_diffusers_config(short).alphas_cumprod, theirs.alphas_cumprod.double().numpy(), rtol=2e-5
    )
    both = current_scheduler_config({"timesteps": 500, "num_train_timesteps": 1000})
    assert both == {"num_train_timesteps": 1000}


def test_trained_betas_without_a_count_give_T_as_diffusers_builds_its_tables() -> None:
    from diffusers import DDPMScheduler

    betas = list(np.linspace(1e-3, 0.05, 40))
    ours = Schedule.from_diffusers_config({"trained_betas": betas})
    theirs = DDPMScheduler.from_config({"trained_betas": betas, "num_train_timesteps": 40})
    assert ours.num_train_timesteps == 40
    np.testing.assert_allclose(ours.alphas_cumprod, theirs.alphas_cumprod.double().numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="trained_betas has 40 values but num_train_timesteps is 1000"):
        Schedule.from_diffusers_config({"trained_betas": betas, "num_train_timesteps": 1000})
    with pytest.raises(TypeError, match="must be a mapping"):
        current_scheduler_config([("timesteps", 10)])


# --- identities --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "T", "zero_snr"), CASES)
def test_identities(name: str, T: int, zero_snr: bool) -> None:
    s = Schedule.from_name(name, T, rescale_zero_terminal_snr=zero_snr)
    # ᾱ strictly decreasing, in (0, 1) except ᾱ_T = 0 with zero terminal SNR.
    assert np.all(np.diff(s.alphas_cumprod) < 0)
    assert s.alphas_cumprod[0] < 1 and (s.alphas_cumprod[-1] == 0) == zero_snr
    # β̃_t = 1 / (1/(1 − ᾱ_{t−1}) + α_t/β_t) for t ≥ 2 (a sum of precisions: eq. 7 as a product of Gaussians).
    with np.errstate(divide="ignore"):
        precision = 1.0 / (1.0 - s.alphas_cumprod_prev[1:]) + s.alphas[1:] / s.betas[1:]
    np.testing.assert_allclose(s.posterior_variance[1:], 1.0 / precision, rtol=1e-10)
    assert s.posterior_variance[0] == 0.0
    np.testing.assert_allclose(s.posterior_log_variance_clipped[0], math.log(s.posterior_variance[1]))
    np.testing.assert_allclose(s.posterior_log_variance_clipped[1:], np.log(s.posterior_variance[1:]))
    # ᾱ_t = ∏ α, 1 − ᾱ_t accurate, SNR and its log, and the square roots.
    np.testing.assert_allclose(s.alphas_cumprod, np.cumprod(s.alphas), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(s.one_minus_alphas_cumprod, 1.0 - s.alphas_cumprod, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(s.sqrt_alphas_cumprod**2 + s.sqrt_one_minus_alphas_cumprod**2, 1.0, rtol=1e-12)
    finite = s.alphas_cumprod > 0
    np.testing.assert_allclose(np.exp(s.log_snr[finite]), s.snr[finite], rtol=1e-9)
    # The two mean coefficients at t = 1 put all weight on x₀: μ̃_1 = x₀.
    assert s.posterior_mean_coef_x0[0] == pytest.approx(1.0) and s.posterior_mean_coef_xt[0] == 0.0


def test_first_one_minus_alpha_bar_is_exact() -> None:
    s = Schedule.from_name("linear", 1000)
    assert s.one_minus_alphas_cumprod[0] == s.betas[0]  # 1 − (1 − β_1) computed without cancellation


def test_tables_are_read_only_and_schedule_is_frozen() -> None:
    s = Schedule.from_name("linear", 10)
    with pytest.raises(ValueError):
        s.betas[0] = 0.5
    with pytest.raises(AttributeError):
        s.name = "x"  # type: ignore[misc]


def test_cosine_is_capped_and_aliased() -> None:
    s = Schedule.from_name("cosine", 1000)
    assert s.name == "squaredcos_cap_v2"
    assert s.betas.max() == 0.999 and s.betas[-1] == 0.999
    assert s.alphas_cumprod[-1] == pytest.approx(2.4e-9, rel=0.1)
    shifted = Schedule.from_name("cosine", 1000, cosine_offset=0.1)
    assert shifted.alphas_cumprod[0] < s.alphas_cumprod[0]


def test_zero_terminal_snr_edges() -> None:
    s = Schedule.from_name("linear", 1000, rescale_zero_terminal_snr=True)
    assert s.betas[-1] == 1.0 and s.alphas_cumprod[-1] == 0.0 and s.snr[-1] == 0.0
    assert s.log_snr[-1] == -np.inf and s.terminal_snr_is_zero
    np.testing.assert_allclose(s.alphas_cumprod[0], Schedule.from_name("linear", 1000).alphas_cumprod[0])
    assert np.all(np.isfinite(s.posterior_variance)) and np.all(np.isfinite(s.posterior_mean_coef_x0))


def test_smallest_schedule_T_equals_2() -> None:
    s = Schedule.from_betas([0.1, 0.5])
    np.testing.assert_allclose(s.alphas_cumprod, [0.9, 0.45])
    np.testing.assert_allclose(s.posterior_variance, [0.0, 0.1 / 0.55 * 0.5])
    assert s.num_train_timesteps == 2


def test_paper_t_conversion_is_the_only_offset() -> None:
    assert paper_t(0) == 1 and timestep_of(1) == 0 and paper_t(timestep_of(1000)) == 1000


# --- respacing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", list(TimestepSpacing))
@pytest.mark.parametrize("name", reference.SCHEDULE_NAMES)
def test_respaced_betas_reproduce_the_kept_alpha_bars(spacing: TimestepSpacing, name: str) -> None:
    s = Schedule.from_name(name, 1000)
    kept = inference_timesteps(1000, 37, spacing)
    r = s.respace(kept)
    np.testing.assert_array_equal(r.timesteps, np.sort(kept))
    np.testing.assert_allclose(r.alphas_cumprod, s.alphas_cumprod[np.sort(kept)], rtol=1e-10)
    # Re-derived β is not the original β at those indices (it spans a jump of several steps).
    assert not np.allclose(r.betas[1:], s.betas[np.sort(kept)][1:])


def test_respacing_to_every_step_is_the_identity() -> None:
    s = Schedule.from_name("sigmoid", 50)
    r = s.respace(np.arange(50))
    np.testing.assert_allclose(r.betas, s.betas, rtol=1e-12)


def test_respacing_zero_snr_keeps_the_final_beta_of_one() -> None:
    s = Schedule.from_name("linear", 1000, rescale_zero_terminal_snr=True)
    r = s.respace(inference_timesteps(1000, 10, "trailing"))
    assert r.betas[-1] == 1.0 and r.alphas_cumprod[-1] == 0.0


# --- properties over random valid schedules ----------------------------------------------------

betas_strategy = st.lists(st.floats(1e-6, 0.5), min_size=2, max_size=300).map(np.array)


@settings(max_examples=60, deadline=None)
@given(betas=betas_strategy)
def test_random_schedules_satisfy_the_identities(betas: np.ndarray) -> None:
    s = Schedule.from_betas(betas)
    assert np.all(np.diff(s.alphas_cumprod) < 0)
    assert np.all(s.posterior_variance[1:] > 0) and np.all(s.posterior_variance <= s.betas)
    assert np.all(np.diff(s.log_snr) < 0)
    # The posterior mean weights: c₀ √ᾱ_t ... the mean of q(x_{t−1}|x_0) is preserved on average:
    # E[μ̃_t] = c₀ x₀ + c_t √ᾱ_t x₀ must equal √ᾱ_{t−1} x₀.
    np.testing.assert_allclose(
        s.posterior_mean_coef_x0 + s.posterior_mean_coef_xt * s.sqrt_alphas_cumprod,
        np.sqrt(s.alphas_cumprod_prev),
        rtol=1e-9,
    )


@settings(max_examples=40, deadline=None)
@given(T=st.integers(2, 3000), data=st.data())
def test_respacing_any_subset(T: int, data: st.DataObject) -> None:
    s = Schedule.from_name("linear", T)
    kept = data.draw(st.lists(st.integers(0, T - 1), min_size=2, max_size=50, unique=True))
    r = s.respace(kept)
    # A jump from ᾱ to ᾱ' stores β' = 1 − ᾱ'/ᾱ; when ᾱ'/ᾱ is tiny, α' = 1 − β' keeps only ~ε·ᾱ/ᾱ' relative
    # accuracy (float64 ε ≈ 2.2e-16), so the tolerance follows the largest jump ratio.
    expected = s.alphas_cumprod[np.sort(kept)]
    ratio = float(np.max(np.concatenate([[1.0], expected[:-1]]) / expected))
    np.testing.assert_allclose(r.alphas_cumprod, expected, rtol=1e-10 + 4e-16 * ratio * len(kept))


# --- bad input ---------------------------------------------------------------------------------

BAD_SCHEDULES = [
    (dict(name="linear", num_train_timesteps=1), "num_train_timesteps"),
    (dict(name="linear", num_train_timesteps=MAX_TIMESTEPS + 1), "num_train_timesteps"),
    (dict(name="linear", num_train_timesteps=10.5), "num_train_timesteps"),
    (dict(name="linear", num_train_timesteps=True), "num_train_timesteps"),
    (dict(name="linear", beta_start=0.02, beta_end=1e-4), "beta_start must not exceed beta_end"),
    (dict(name="linear", beta_start=float("nan")), "beta_start"),
    (dict(name="linear", beta_end=1.0), "beta_end"),
    (dict(name="sigmoid", beta_start=0.0), "beta_start"),
    (dict(name="scaled_linear", beta_end=float("inf")), "beta_end"),
    (dict(name="laplace"), "linear, scaled_linear, squaredcos_cap_v2, sigmoid, cosine"),
    (dict(name="cosine", cosine_offset=-1.0), "cosine offset"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_SCHEDULES)
def test_bad_named_schedules_are_refused(kwargs: dict, message: str) -> None:
    kwargs = dict(kwargs)
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Schedule.from_name(name, **kwargs)


BAD_BETAS = [
    ([], "must not be empty"),
    ([0.1], r"\[2, 10000\]"),
    ([[0.1, 0.2]], "1-D"),
    ([0.1, float("nan")], "finite"),
    ([0.1, float("inf")], "finite"),
    ([0.0, 0.1], r"\(0, 1\)"),
    ([-0.1, 0.1], r"\(0, 1\)"),
    ([1.0, 0.5], r"only the last may be exactly 1"),
    ([0.1, 1.5], r"\(0, 1\)"),
]


@pytest.mark.parametrize(("betas", "message"), BAD_BETAS)
def test_bad_betas_are_refused(betas: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule.from_betas(betas)


def test_last_beta_may_be_exactly_one() -> None:
    assert Schedule.from_betas([0.1, 1.0]).alphas_cumprod[-1] == 0.0


@pytest.mark.parametrize(
    ("args", "message"),
    [((1000, 0, "leading"), r"\[1, 1000\]"), ((1000, 1001, "leading"), r"\[1, 1000\]"), ((10, 5, "middle"), "spacing")],
)
def test_bad_inference_steps_are_refused(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        inference_timesteps(*args)


def test_enum_parsing_lists_valid_names() -> None:
    assert BetaSchedule.parse("COSINE") is BetaSchedule.SQUAREDCOS_CAP_V2
    with pytest.raises(ValueError, match="leading, trailing, linspace"):
        TimestepSpacing.parse("sideways")


def test_timestep_lookup_refuses_out_of_range() -> None:
    from explorer.diffusion.tensors import gather

    s = Schedule.from_name("linear", 10)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        gather(s.betas, 10, torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        gather(s.betas, torch.tensor([-1, 3]), torch.zeros(2, 2))


# --- deliberate differences from diffusers' set_timesteps / DDIM step (documented in inference_timesteps) --------


def _is_half_integer(numerator: int, denominator: int) -> bool:
    return numerator % denominator != 0 and (2 * numerator) % denominator == 0


def test_trailing_differs_from_diffusers_only_in_the_documented_ways() -> None:
    T = 1000
    scheduler = reference.ddim_scheduler("linear", T, False, timestep_spacing="trailing")
    rounded, extra = [], []
    for n in range(1, T + 1):
        ours = inference_timesteps(T, n, "trailing")
        scheduler.set_timesteps(n)
        theirs = scheduler.timesteps.numpy()
        # Ours: exactly n distinct steps, descending, inside [0, T − 1].
        assert ours.size == n and np.all(np.diff(ours) < 0) and ours[-1] >= 0 and ours[0] == T - 1
        if theirs.size > n:  # diffusers' float arange passed 0: one more timestep, −1 (the data, not a step)
            np.testing.assert_array_equal(theirs[n:], [-1])
            extra.append(n)
        differ = np.flatnonzero(theirs[:n] != ours)
        if differ.size and theirs.size == n:
            rounded.append(n)
        for k in differ:  # k·T/n was a half-integer: ours rounds it half to even, diffusers' float landed below it
            exact = (n - int(k)) * T
            assert _is_half_integer(exact, n) and abs(int(theirs[k]) - int(ours[k])) == 1, (n, k)
    # The counts the docstring of inference_timesteps states (diffusers 0.42); update both together.
    assert (len(rounded), len(extra), len(set(rounded) | set(extra))) == (49, 62, 111)
    assert 61 in extra


def _ddim_lands_on(scheduler, timestep: int) -> int:
    """Where diffusers' DDIMScheduler.step from `timestep` lands, read from its output: with x̂₀ = 1 and ε̂ = 0 the
    step returns √ᾱ of the timestep it lands on (1 for the data: −1)."""
    a = scheduler.alphas_cumprod
    x0 = torch.ones(1, 1)
    landed = float(scheduler.step(x0, timestep, a[timestep] ** 0.5 * x0, eta=0.0).prev_sample[0, 0]) ** 2
    if landed == 1.0:
        return -1
    return int(np.argmin(np.abs(np.log(a.double().numpy()) - math.log(landed))))


@pytest.mark.parametrize("n", [7, 10, 50, 333])
def test_ddim_previous_timestep_differs_from_diffusers_for_linspace(n: int) -> None:
    T = 1000
    scheduler = reference.ddim_scheduler("linear", T, False, timestep_spacing="linspace", prediction_type="sample")
    scheduler.set_timesteps(n)
    grid = inference_timesteps(T, n, "linspace")
    np.testing.assert_array_equal(grid, scheduler.timesteps.numpy())  # the grids agree ...
    ours_next = np.append(grid[1:], -1)  # ... the explorer lands on the next step of its grid (then the data)
    theirs = np.array([_ddim_lands_on(scheduler, int(t)) for t in grid])
    differ = theirs != ours_next
    assert differ[:-1].any()  # ... diffusers (issue #12633) does not, in the one documented way: t − T // n
    for t, landed in zip(grid[differ], theirs[differ], strict=True):
        assert landed == max(int(t) - T // n, -1) or (landed == -1 and int(t) - T // n < 0)


# --- zero terminal SNR by construction, and ᾱ_T that only underflows -----------------------------------------------


def test_a_beta_end_near_one_underflows_but_is_not_zero_terminal_snr() -> None:
    s = Schedule.from_name("linear", 1000, beta_end=0.999)
    assert s.alphas_cumprod[-1] == 0.0  # e^−995.7 is below float64's range
    assert np.isfinite(s.log_snr[-1]) and s.log_snr[-1] == pytest.approx(-995.7, abs=0.05)
    assert not s.terminal_snr_is_zero and s.terminal_snr_underflows
    zero = Schedule.from_name("linear", 1000, rescale_zero_terminal_snr=True)
    assert zero.terminal_snr_is_zero and not zero.terminal_snr_underflows
    plain = Schedule.from_name("cosine", 1000)
    assert not plain.terminal_snr_is_zero and not plain.terminal_snr_underflows


def test_zero_snr_rescale_of_an_underflowing_schedule_is_computed_in_log_space() -> None:
    original = Schedule.from_name("linear", 1000, beta_end=0.999)
    s = Schedule.from_name("linear", 1000, beta_end=0.999, rescale_zero_terminal_snr=True)
    assert np.all(np.isfinite(s.betas)) and s.betas[-1] == 1.0 and np.all(s.betas[:-1] < 1)
    assert s.terminal_snr_is_zero and s.alphas_cumprod[0] == pytest.approx(original.alphas_cumprod[0], rel=1e-14)
    # √ᾱ' = (√ᾱ − √ᾱ_T)·√ᾱ_1/(√ᾱ_1 − √ᾱ_T): √ᾱ (unlike ᾱ) is representable down to ᾱ_T = e^−995.7.
    sqrt_abar = np.exp(0.5 * np.cumsum(np.log1p(-original.betas)))
    first, last = sqrt_abar[0], sqrt_abar[-1]
    expected = 2 * np.log((sqrt_abar[:-1] - last) * first / (first - last))
    np.testing.assert_allclose(np.cumsum(np.log1p(-s.betas[:-1])), expected, rtol=1e-11)


def test_zero_snr_rescale_that_cannot_be_represented_is_refused_by_name() -> None:
    # A valid schedule whose √ᾱ_T equals √ᾱ_{T−1} in float64: the rescaled β_{T−1} would round to 1.
    with pytest.raises(ValueError, match=r"rescale_zero_terminal_snr: .* cannot be rescaled"):
        rescaled_to_zero_terminal_snr(np.array([0.1, 1e-17, 1e-17]))
