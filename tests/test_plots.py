"""Figures, pictures, validation and the session store, without gradio."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer import Schedule
from explorer.figures.formulas import step_formulas
from explorer.figures.images import image_grid, scatter_frame
from explorer.figures.posterior import gaussian_product
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


def test_formulas_at_the_edges():
    s = Schedule.from_name("linear", 10, rescale_zero_terminal_snr=True)
    assert r"\tilde\beta_1 = 0" in step_formulas(s, 1)
    assert "undefined" in step_formulas(s, 10)


@pytest.mark.parametrize("t", [2, 50, 999])
def test_product_of_gaussians_is_the_posterior(t):
    curves = gaussian_product(Schedule.from_name("linear", 1000), t, x0=0.3, x_t=-0.5)
    assert np.allclose(curves.product, curves.posterior, atol=1e-3 * curves.posterior.max())


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
    models = [OptimalDenoiser(data, schedule, p, name=p) for p in ("epsilon", "sample", "v_prediction")]
    figure = comparison_figure(teacher_force(models, x0=data[:8], timesteps=[0, 50, 99]))
    titles = [a.text for a in figure.layout.annotations]
    assert titles[:3] == [f"MSE in {s} space (log)" for s in ("ε", "x₀", "v")] and titles[4].startswith("KL term")
    assert len(figure.data) == 3 * 4 + 3  # per model: three spaces and the KL; then the three target sizes
    assert {t.name for t in figure.data if t.showlegend is not False} >= {"epsilon (ε-prediction)", "RMS of true v"}
