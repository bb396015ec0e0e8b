"""Figures, pictures, validation and the session store, without gradio."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from explorer import Schedule, timestep_of
from explorer.figures.images import image_grid, scatter_frame
from explorer.figures.plain import PlainFigure
from explorer.figures.posterior import (
    DensityPanel,
    gaussian_product,
    gaussian_product_figure,
    message_figure,
    reverse_density_figure,
)
from explorer.figures.sampling import diagnostics_figure
from explorer.figures.schedules import LabelledSchedule, schedule_figure, thin
from explorer.validation import check_float, check_int
from ui.state import SessionStore


def test_thin_keeps_ends_and_the_chosen_step():
    index = thin(4000, keep=[1234])
    assert index[0] == 0 and index[-1] == 3999 and 1234 in index and len(index) <= 503


@pytest.mark.parametrize("T", [2, 1000, 4000])
def test_schedule_figure_has_every_table(T):
    s = Schedule.from_name("linear", T)
    figure = schedule_figure([LabelledSchedule(s, "a")], t=T, visited={"leading": np.array([T - 1, 0])})
    assert len(figure.data) == 8 + 2  # eight curves, markers on log SNR and in the strip
    assert all(len(trace.x) <= 503 for trace in figure.data)


def _plain_figures() -> dict[str, PlainFigure]:
    """One of each figure built as plain data, at ordinary and edge settings."""
    zero = Schedule.from_name("linear", 1000, rescale_zero_terminal_snr=True)
    labelled = [LabelledSchedule(Schedule.from_name(n, 1000), n) for n in ("linear", "cosine")]
    visited = {"leading": np.array([980, 500, 0]), "trailing": np.array([999, 0])}
    rng = np.random.default_rng(0)
    panels = [DensityPanel(f"panel {k}", rng.random((30, 30))) for k in range(3)]
    points = dict(x_t=np.array([0.1, 0.2]), x0=np.array([0.3, -0.2]), data=rng.standard_normal((50, 2)))
    figures = {
        f"schedules against {axis}": schedule_figure(labelled, t=1, x_axis=axis, visited=visited)
        for axis in ("t", "t/T", "β_t")
    }
    for t, schedule in ((1, zero), (500, zero), (1000, zero)):
        figures[f"product t={t}"] = gaussian_product_figure(gaussian_product(schedule, t, 0.3, -0.5), t)
    figures["reverse"] = reverse_density_figure(np.linspace(-2, 2, 30), np.linspace(-1, 1, 30), panels, **points)
    figures["message"] = message_figure("nothing to draw")
    return figures


@pytest.mark.parametrize("name", list(_plain_figures()))
def test_plain_figures_are_valid_plotly_and_send_what_plotly_would_send(name):
    """Built without plotly's validation: plotly accepts every property, and its JSON is the same figure."""
    figure = _plain_figures()[name]
    validated = figure.validated()  # raises on a property plotly does not know
    assert json.loads(figure.to_json()) == json.loads(validated.to_json())
    assert len(figure.traces) == len(validated.data)


@pytest.mark.parametrize("t", [2, 50, 999])
def test_product_of_gaussians_is_the_posterior(t):
    curves = gaussian_product(Schedule.from_name("linear", 1000), t, x0=0.3, x_t=-0.5)
    assert np.allclose(curves.product, curves.posterior, atol=1e-3 * curves.posterior.max())


def test_at_t_equals_1_the_posterior_is_a_point_mass_at_x0():
    curves = gaussian_product(Schedule.from_name("linear", 1000), 1, x0=0.3, x_t=0.31)
    assert curves.point_mass == 0.3 and curves.prior is None and curves.posterior is None and curves.product is None
    figure = gaussian_product_figure(curves, 1)
    (mass,) = [trace for trace in figure.data if "δ(y − x₀)" in trace.name]
    assert set(mass.x) == {0.3} and "posterior" in mass.name
    assert not any("likelihood × prior" in trace.name for trace in figure.data)
    assert "δ(y − x₀)" in figure.layout.title.text and "product of two Gaussians" not in figure.layout.title.text


@pytest.mark.parametrize(("name", "t"), [("cosine", 999), ("cosine", 1000), ("linear", 2), ("linear", 500)])
def test_the_likelihood_integrates_to_what_its_label_says(name, t):
    schedule = Schedule.from_name(name, 1000)
    grid = np.linspace(-400, 400, 400_001)  # wide enough for cosine's t = T: β/α = 999, std 31.6
    curves = gaussian_product(schedule, t, x0=0.3, x_t=-0.5, grid=grid)
    name_shown = gaussian_product_figure(curves, t).data[0].name
    assert name_shown.startswith("likelihood") and "normalised in y (area 1)" in name_shown
    assert np.trapezoid(curves.likelihood, grid) == pytest.approx(1.0, abs=1e-6)
    # What it is: √α_t · q(x_t | x_{t−1} = y), with q = N(x_t; √α_t y, β_t) as a function of y.
    i = timestep_of(t)
    alpha, beta = schedule.alphas[i], schedule.betas[i]
    q = np.exp(-0.5 * (-0.5 - np.sqrt(alpha) * grid) ** 2 / beta) / np.sqrt(2 * np.pi * beta)
    np.testing.assert_allclose(curves.likelihood, np.sqrt(alpha) * q, rtol=1e-9, atol=1e-300)


def test_at_zero_terminal_snr_the_likelihood_is_said_to_be_flat():
    schedule = Schedule.from_name("linear", 1000, rescale_zero_terminal_snr=True)
    curves = gaussian_product(schedule, 1000, x0=0.3, x_t=-0.5)
    assert curves.likelihood_is_flat and curves.likelihood is None
    np.testing.assert_allclose(curves.product, curves.prior, atol=1e-3 * curves.prior.max())
    figure = gaussian_product_figure(curves, 1000)
    assert "flat in y" in figure.layout.title.text
    assert any("the likelihood is flat" in trace.name for trace in figure.data)


def _diagnostics():
    t = np.arange(1000, 0, -100, dtype=np.float64)
    keys = ("signal", "noise", "x_t_rms", "eps_std", "x0_min", "x0_max", "clipped")
    return diagnostics_figure({"t": t, **{k: np.linspace(0, 1, t.size) for k in keys}})


def test_diagnostics_t_axis_is_reversed_and_says_sampling_runs_left_to_right():
    figure = _diagnostics()
    axes = [figure.layout[name] for name in figure.layout if name.startswith("xaxis")]
    assert len(axes) == 2  # two panels: drawn once a run ends, in one main-thread task
    for axis in axes:
        assert axis.autorange == "reversed"
        assert "left to right" in axis.title.text and "right to left" not in axis.title.text


def test_diagnostics_fraction_clipped_has_its_own_zero_to_one_axis():
    figure = _diagnostics()
    by_name = {trace.name: trace for trace in figure.data}
    clipped, low = by_name["fraction of x̂₀ clipped"], by_name["min x̂₀"]
    assert clipped.yaxis != low.yaxis
    assert [trace.name for trace in figure.data if trace.yaxis == clipped.yaxis] == ["fraction of x̂₀ clipped"]
    axis = figure.layout["yaxis" + clipped.yaxis[1:]]
    assert tuple(axis.range) == (0, 1.02)


def test_diagnostics_do_not_expect_eps_std_near_1_at_every_t():
    titles = [annotation.text for annotation in _diagnostics().layout.annotations]
    (eps_title,) = [title for title in titles if "std of ε̂" in title]
    assert "should stay near 1" not in eps_title and "high t" in eps_title


def test_posterior_weight_panel_has_a_log_axis_with_no_zero_on_it():
    s = Schedule.from_name("linear", 1000)
    figure = schedule_figure([LabelledSchedule(s, "a")], t=500)
    assert figure.layout.yaxis5.type == "log" and "(log)" in figure.layout.annotations[4].text
    on_panel = [np.asarray(trace.y, dtype=np.float64) for trace in figure.data if trace.yaxis == "y5"]
    assert len(on_panel) == 2 and all(np.all(values[np.isfinite(values)] > 0) for values in on_panel)
    assert min(np.nanmin(values) for values in on_panel) < 1e-2  # the x₀ weight, readable now


def test_pictures_are_upscaled_with_nearest_neighbour():
    picture = image_grid(torch.rand(4, 1, 16, 16) * 2 - 1, columns=2, scale=3)
    assert picture.size == (3 * (2 * 16 + 2), 3 * (2 * 16 + 2))
    assert len(set(np.asarray(picture)[:3, :3].ravel())) == 1  # one source pixel → one 3×3 block
    assert scatter_frame(torch.randn(10, 2), size=64).size == (64, 64)


def test_validation_names_the_field():
    with pytest.raises(ValueError, match=r"steps must be a whole number in \[1, 10\]; got 50.5"):
        check_int("steps", 50.5, 1, 10)
    with pytest.raises(ValueError, match="η must be a finite number"):
        check_float("η", math.nan, 0, 1)
    assert check_int("steps", 5.0, 1, 10) == 5


def test_session_store_caps_bytes_and_expires():
    now = [0.0]
    store = SessionStore(max_bytes_per_session=100, max_total_bytes=150, time_to_live=10, clock=lambda: now[0])
    with pytest.raises(ValueError, match="at most"):
        store.put("a", "x", 101)
    store.put("a", "A", 80)
    store.put("b", "B", 80)  # over the total: the least recently used goes
    assert store.get("a") is None and store.get("b") == "B"
    now[0] = 11
    assert store.get("b") is None and len(store) == 0


def test_comparison_figure_has_every_space_the_target_sizes_and_kl():
    from explorer.diffusion.oracle import OptimalDenoiser
    from explorer.diffusion.teacher import teacher_force
    from explorer.figures.sampling import comparison_figure

    schedule = Schedule.from_name("linear", 100)
    data = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    predictions = ("epsilon", "sample", "v_prediction", "flow_prediction")
    models = [OptimalDenoiser(data, schedule, p, name=p) for p in predictions]
    figure = comparison_figure(teacher_force(models, x0=data[:8], timesteps=[0, 50, 99]))
    titles = [a.text for a in figure.layout.annotations]
    assert titles[:4] == [f"MSE in {s} space (log)" for s in ("ε", "x₀", "v", "u")] and titles[5].startswith("KL term")
    assert len(figure.data) == 4 * 5 + 4  # per model: four spaces and the KL; then the four target sizes
    shown = {t.name for t in figure.data if t.showlegend is not False}
    assert shown >= {"epsilon (ε-prediction)", "flow_prediction (u-prediction)", "RMS of true v", "RMS of true u"}
    # Curves on top of each other stay distinguishable: each model its own dash and marker.
    styles = {(t.legendgroup, t.line.dash, t.marker.symbol) for t in figure.data if t.legendgroup}
    assert len(styles) == 4 and len({(dash, symbol) for _, dash, symbol in styles}) == 4
    # The KL panel says what it leaves out, and why.
    note = figure.layout.title.text
    assert "L₀ (t = 1) is a decoder term, not a KL between Gaussians" in note
    assert "L<sub>T</sub>" in note and "has no parameters" in note
