"""The animated 2-D cloud: exact densities on grids against the oracle, frames, the figure, and refusals."""

from __future__ import annotations

import json
import math

import gradio as gr
import numpy as np
import pytest
import torch
from app_fixtures import FakeRequest, ensure_models

from explorer.data import digits, exact_training_set
from explorer.diffusion.indexing import paper_t, timestep_of
from explorer.diffusion.oracle import OptimalDenoiser, ReverseMixture, mixture_density, true_reverse
from explorer.diffusion.sampler import sample
from explorer.diffusion.schedules import Schedule
from explorer.figures.cloud import MAX_FRAMES, TRACES, cloud_figure, frame_positions, reverse_contours, run_cloud
from explorer.figures.densities import centres, contour_lines, marginal_cells, mass_levels, mixture_cells
from ui import cloud as cloud_view
from ui.state import keep_run

SCHEDULE = Schedule.from_name("linear", 1000)
MOONS = exact_training_set("moons")  # [1000, 2]


def _run(steps: int, batch: int, seed: int = 0):
    """A compact run of the exact moons denoiser (no network needed)."""
    with torch.no_grad():
        run = sample(OptimalDenoiser(MOONS, SCHEDULE), num_inference_steps=steps, batch_size=batch, seed=seed)
    return run.compact()


def _cell_means(mixture: ReverseMixture, x_edges, y_edges, cells, sub: int = 24) -> np.ndarray:
    """The oracle's density averaged over `sub`² points inside each listed cell (j, i): float64 [len(cells)]."""
    means = []
    for j, i in cells:
        u = (np.arange(sub) + 0.5) / sub
        xs = x_edges[i] + u * (x_edges[i + 1] - x_edges[i])
        ys = y_edges[j] + u * (y_edges[j + 1] - y_edges[j])
        grid = torch.from_numpy(np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2))
        means.append(float(mixture_density(mixture, grid)[0].mean()))
    return np.array(means)


def _marginal_mixture(alpha_cumprod: float) -> ReverseMixture:
    """q(x_t) of the moons set written as the oracle's mixture type: uniform weights, means √ᾱ x_n, variance 1 − ᾱ."""
    n = MOONS.shape[0]
    means = (math.sqrt(alpha_cumprod) * MOONS.double())[None]  # [1, N, 2]
    return ReverseMixture(torch.full((1, n), 1.0 / n, dtype=torch.float64), means, 1.0 - alpha_cumprod, 0, -1)


@pytest.mark.parametrize("t", [1, 50, 300, 1000])
def test_the_marginal_integrates_to_one_even_where_it_is_narrower_than_a_cell(t):
    edges = np.linspace(-6, 6, 61)  # cells of 0.2; at t = 1 the Gaussians have σ = 0.01
    cells = marginal_cells(MOONS, float(SCHEDULE.alphas_cumprod[timestep_of(t)]), edges, edges)
    assert cells.shape == (60, 60) and (cells >= 0).all()
    assert cells.sum() * 0.2**2 == pytest.approx(1.0, abs=1e-7)  # all but the tails beyond ±6


@pytest.mark.parametrize("t", [50, 300, 1000])
def test_the_marginal_equals_the_oracles_mixture_density_in_sampled_cells(t):
    a = float(SCHEDULE.alphas_cumprod[timestep_of(t)])
    edges = np.linspace(-3, 3, 61)
    cells = marginal_cells(MOONS, a, edges, edges)
    rng = np.random.default_rng(t)
    picked = [tuple(c) for c in rng.integers(0, 60, size=(8, 2))] + [np.unravel_index(cells.argmax(), cells.shape)]
    expected = _cell_means(_marginal_mixture(a), edges, edges, picked)
    got = np.array([cells[j, i] for j, i in picked])
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-6 * cells.max())
    # at high t the cells are smooth: the value at a cell centre is the oracle's point density there
    if t == 1000:
        j, i = picked[-1]
        centre = torch.tensor([[centres(edges)[i], centres(edges)[j]]], dtype=torch.float64)
        assert cells[j, i] == pytest.approx(float(mixture_density(_marginal_mixture(a), centre)[0, 0]), rel=1e-3)


def test_a_wrong_variance_would_not_pass():
    """The oracle comparison can fail: the same means with another variance give other cells."""
    edges = np.linspace(-3, 3, 31)
    a = float(SCHEDULE.alphas_cumprod[timestep_of(300)])
    weights = torch.full((MOONS.shape[0],), 1.0 / MOONS.shape[0], dtype=torch.float64)
    wrong = mixture_cells(weights, math.sqrt(a) * MOONS.double(), 1.2 * (1 - a), edges, edges)
    assert not np.allclose(wrong, marginal_cells(MOONS, a, edges, edges), rtol=1e-2)
    with pytest.raises(ValueError, match="positive variance"):
        mixture_cells(weights, MOONS.double(), 0.0, edges, edges)


@pytest.mark.parametrize(("steps", "batch"), [(20, 16), (130, 8)])
def test_frames_are_evenly_spaced_steps_then_the_samples_with_every_point(steps, batch):
    compact = _run(steps, batch)
    cloud = run_cloud(compact, MOONS, highlighted=batch - 1)
    positions = frame_positions(steps)
    assert len(cloud.frames) == min(steps, MAX_FRAMES) + 1
    assert positions[0] == 0 and positions[-1] == steps - 1 and len(positions) == min(steps, MAX_FRAMES)
    for frame, k in zip(cloud.frames, positions, strict=False):
        assert frame.t == paper_t(int(compact.timesteps[k]))  # paper t of the state entering step k
        assert frame.points.shape == (batch, 2)
        np.testing.assert_array_equal(frame.points, compact.x_t[k].numpy())
        np.testing.assert_array_equal(frame.highlight, compact.x_t[k, batch - 1].double().numpy())
    final = cloud.frames[-1]
    assert final.marginal is None and final.reverse is None
    np.testing.assert_array_equal(final.points, compact.samples.numpy())
    last_step = cloud.frames[-2]
    assert last_step.s == 0 and last_step.reverse is None  # to x₀: point masses, only the mean is drawn


def test_the_highlighted_points_contours_are_the_exact_reverse():
    compact = _run(20, 4, seed=3)
    cloud = run_cloud(compact, MOONS, highlighted=2)
    positions = frame_positions(20)
    for index in (0, 9, 18):  # high t (a wide jump), the middle, near the data (multi-modal)
        frame, k = cloud.frames[index], int(positions[index])
        mixture = true_reverse(
            MOONS, SCHEDULE, compact.x_t[k, 2:3], int(compact.timesteps[k]), int(compact.prev_timesteps[k])
        )
        local = frame.reverse
        area = np.diff(local.x_edges)[0] * np.diff(local.y_edges)[0]
        assert local.cells.sum() * area == pytest.approx(1.0, abs=1e-3)  # the local grid holds the whole reverse
        rng = np.random.default_rng(index)
        picked = [tuple(c) for c in rng.integers(0, 40, size=(6, 2))]
        picked.append(np.unravel_index(local.cells.argmax(), local.cells.shape))
        expected = _cell_means(mixture, local.x_edges, local.y_edges, picked)
        got = np.array([local.cells[j, i] for j, i in picked])
        np.testing.assert_allclose(got, expected, rtol=5e-3, atol=1e-6 * local.cells.max())
        np.testing.assert_allclose(frame.exact_mean, mixture.mean()[0].numpy())
        lines = reverse_contours(local)
        assert lines.shape[1] == 2 and np.isfinite(lines).any()


def test_mass_levels_and_contours_of_a_gaussian():
    """The 50 % region of N(0, σ²I) is the disc of radius σ√(2 ln 2); its contour lies on that circle."""
    sigma, edges = 0.5, np.linspace(-3, 3, 241)
    weights, mean = torch.ones(1, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
    cells = mixture_cells(weights, mean, sigma**2, edges, edges)
    (level,) = mass_levels(cells, 0.025**2, (0.5,))
    radius = sigma * math.sqrt(2 * math.log(2))
    assert level == pytest.approx(math.exp(-0.5 * (radius / sigma) ** 2) / (2 * math.pi * sigma**2), rel=2e-2)
    line = contour_lines(cells, centres(edges), centres(edges), level)
    r = np.hypot(line[:, 0], line[:, 1])
    assert np.isnan(line[2::3]).all()  # segments, each followed by a gap
    np.testing.assert_allclose(r[np.isfinite(r)], radius, rtol=1e-2)


def test_the_figure_is_valid_with_a_frame_per_entry_and_plotlys_controls():
    compact = _run(12, 32)
    cloud = run_cloud(compact, MOONS, highlighted=5)
    figure = cloud_figure(cloud, token="abc")
    validated = figure.validated()  # every property known to plotly
    assert len(validated.frames) == len(cloud.frames) == 13
    sent = json.loads(figure.to_json())
    assert sent["layout"]["meta"]["cloud"] == "abc"
    assert [b["label"] for b in sent["layout"]["updatemenus"][0]["buttons"]] == ["▶ Play", "❚❚ Pause"]
    steps = sent["layout"]["sliders"][0]["steps"]
    assert [s["args"][0][0] for s in steps] == [f["name"] for f in sent["frames"]]
    assert (
        sent["frames"][0]["name"] == str(paper_t(int(compact.timesteps[0]))) and sent["frames"][-1]["name"] == "0 (x₀)"
    )
    for j, frame in enumerate(sent["frames"]):
        assert len(frame["data"]) == len(TRACES) and all(d["type"] == "scatter" for d in frame["data"])
        (image,) = frame["layout"]["images"]
        final = j == len(sent["frames"]) - 1
        assert image["visible"] is not final  # no density under the final samples
        assert final or image["source"].startswith("data:image/png;base64,")
    points = validated.frames[4].data[TRACES.index("points")]
    np.testing.assert_allclose(np.asarray(points.x), cloud.frames[4].points[:, 0])
    assert len(validated.frames[-1].data[TRACES.index("data")].x) == len(MOONS)
    assert len(validated.frames[0].data[TRACES.index("data")].x) == 0


def test_bad_highlighted_points_and_image_runs_are_refused_by_name():
    compact = _run(5, 4)
    with pytest.raises(ValueError, match=r"highlighted point must be a whole number in \[0, 3\]"):
        run_cloud(compact, MOONS, highlighted=4)
    pictures = digits().images[:20]  # [20, 1, 16, 16]
    with torch.no_grad():
        image_run = sample(OptimalDenoiser(pictures, SCHEDULE), num_inference_steps=3, batch_size=2).compact()
    with pytest.raises(ValueError, match="2-D points"):
        run_cloud(image_run, MOONS)
    request = FakeRequest("cloud-image-run")
    keep_run(request, image_run, "digits-eps")
    with pytest.raises(gr.Error, match="The cloud is for 2-D models"):
        cloud_view.animate(0, request)


def test_the_view_animates_the_stored_run_of_a_2d_model():
    ensure_models()  # "exact-moons" is offered where a moons model is bundled
    compact = _run(8, 6)
    request = FakeRequest("cloud-moons-run")
    keep_run(request, compact, "exact-moons")
    figure, caption = cloud_view.animate(2, request)
    assert len(figure.frames) == 9
    assert "exact for that finite training set" in caption and "point 2" in caption
    with pytest.raises(gr.Error, match="highlighted point"):
        cloud_view.animate(6, request)
