"""The app's handlers called as plain functions: what they return, and gr.Error on bad input."""

from __future__ import annotations

import math

import gradio as gr
import numpy as np
import pytest
import torch
from app_fixtures import DEFAULT_SCHEDULE, FakeRequest, ensure_models, no_progress
from PIL import Image

from ui import parameterizations, posterior, restore, sampling, schedules

GOOD = [*DEFAULT_SCHEDULE, True, "squaredcos_cap_v2", 1000, 1e-4, 0.02, 0.008, False]
GOOD += [False, "linear", 1000, 1e-4, 0.02, 0.008, True, "t", 500, 50]


@pytest.fixture(scope="module", autouse=True)
def models():
    ensure_models()


def test_schedules_returns_figure_tables_and_strip():
    figure, table, formulas, spacings, strip, caption = schedules.update_schedules(*GOOD)
    names = {trace.name for trace in figure.data}
    assert any(name.startswith("1: linear") for name in names)
    assert any(name.startswith("2: squaredcos_cap_v2") for name in names)
    assert "β_t" in table and r"\tilde\beta_{500}" in formulas
    assert "| leading | 50 | 981 |" in spacings
    assert isinstance(strip, Image.Image) and strip.mode == "L"
    assert "t = 20, 50" in caption


def test_schedules_against_beta_and_at_the_ends():
    args = list(GOOD)
    args[-3], args[-2] = "β_t", 1
    figure, *_ = schedules.update_schedules(*args)
    assert figure.layout.xaxis.type == "log"
    args[-2] = 4000  # beyond T: clamped to T = 1000
    _, table, _formulas, *_ = schedules.update_schedules(*args)
    assert "t = 1000" in table


@pytest.mark.parametrize(
    ("position", "value", "field"),
    [
        (-2, math.nan, "t"),
        (-2, 50.5, "t"),
        (-1, 0, "sampling steps"),
        (1, 1, "schedule 1 T"),
        (2, 0.5, "schedule 1 β start must not exceed"),
        (3, 1.5, "schedule 1 β end"),
        (0, "quadratic", "schedule 1 family"),
        (-3, "log t", "x axis"),
        (5, "yes", "schedule 1 zero terminal SNR"),
    ],
)
def test_schedules_refuse_bad_input(position, value, field):
    args = list(GOOD)
    args[position] = value
    with pytest.raises(gr.Error, match=field):
        schedules.update_schedules(*args)


def test_t_sliders_follow_T():
    t, steps = schedules.rescale_t_sliders(100, 500, 200)
    assert t.value == 100 and t.maximum == 100 and steps.value == 100


@pytest.mark.parametrize("source", ["digit", "moons", "ring"])
def test_posterior_views(source):
    picture, _caption, numbers, product, reverse = posterior.update_posterior(
        source, 3, None, *DEFAULT_SCHEDULE, 200, 0, 120, 10
    )
    assert isinstance(picture, Image.Image)
    assert "β̃" in numbers
    names = [trace.name for trace in product.data]
    assert len(names) == 4 and "likelihood × prior, normalised" in names
    if source == "digit":
        assert picture.size[0] > 9 * 16 * 6  # nine tiles, upscaled 6×
    else:
        heatmaps = [trace for trace in reverse.data if trace.type == "heatmap"]
        assert len(heatmaps) >= 2 and "true reverse" in reverse.layout.annotations[0].text
        assert all(np.isfinite(np.asarray(h.z)).all() and np.asarray(h.z).max() > 0 for h in heatmaps)


def test_true_reverse_jumps_by_the_step_size():
    *_, reverse = posterior.update_posterior("ring", 0, None, *DEFAULT_SCHEDULE, 100, 0, 0, 500)
    assert "q(x<sub>1</sub> | x<sub>100</sub>)" in reverse.layout.annotations[0].text  # Δ clamped: s ≥ 1


@pytest.mark.parametrize(("index", "field"), [(1001, "example"), (math.inf, "example"), (-1, "example")])
def test_posterior_refuses_bad_input(index, field):
    with pytest.raises(gr.Error, match=field):
        posterior.update_posterior("digit", index, None, *DEFAULT_SCHEDULE, 200, 0, 120, 1)


def test_posterior_refuses_missing_upload():
    with pytest.raises(gr.Error, match="no image was uploaded"):
        posterior.update_posterior("uploaded image", 0, None, *DEFAULT_SCHEDULE, 200, 0, 120, 1)


def test_posterior_refuses_upload_on_a_space(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/space")
    with pytest.raises(gr.Error, match="only when the app runs locally"):
        posterior.update_posterior("uploaded image", 0, None, *DEFAULT_SCHEDULE, 200, 0, 120, 1)


RUN = ["digits-eps", "", "ddpm", 4, 0.0, "model default", "model default", "the model's own", *DEFAULT_SCHEDULE]


def _run(request, *, steps=4, batch=4, model="digits-eps", sampler="ddpm"):
    args = list(RUN)
    args[0], args[2], args[3] = model, sampler, steps
    return list(sampling.run(*args, "leading", 0, batch, request=request, progress=no_progress))


def test_run_streams_then_frames_step_without_the_model():
    request = FakeRequest("handlers-run")
    outputs = _run(request)
    picture, status, slider, figure, _finals = outputs[-1]
    assert isinstance(picture, Image.Image) and "Frame 4 of 4" in status
    assert slider.maximum == 4 and len(figure.data) == 7
    first, text = sampling.show_frame(1, request=request)
    assert "Frame 1 of 4" in text and first.tobytes() != picture.tobytes()
    new, _, text = sampling.step_frame(4, 1, request=request)
    assert new == 4 and "Frame 4 of 4" in text  # clamped at the end
    gif, mp4 = sampling.export(request=request)
    assert gif.endswith(".gif") and mp4.endswith(".mp4")


def test_branch_with_unchanged_settings_restarts_exactly():
    request = FakeRequest("handlers-exact-branch")
    _run(request, steps=6, batch=3)
    before = sampling.STORE.get(request.session_hash).compact
    args = ["ddpm", 0.0, "model default", "model default", "the model's own", *DEFAULT_SCHEDULE]
    list(sampling.branch(3, *args, request=request, progress=no_progress))
    after = sampling.STORE.get(request.session_hash).compact
    assert after is not before
    assert torch.equal(after.x_t[:3], before.x_t[:3])  # frames 1..3 kept; frame 3 (index 2) is the restart state
    # the sampler carries x_t in float64 on the CPU but records it in float32: later frames agree to rounding
    torch.testing.assert_close(after.x_t, before.x_t, rtol=0, atol=1e-5)
    torch.testing.assert_close(after.samples, before.samples, rtol=0, atol=1e-5)


def test_run_on_points_and_branch():
    request = FakeRequest("handlers-branch")
    _run(request, model="moons-v", batch=64, steps=6)
    outputs = list(
        sampling.branch(
            3,
            "ddim",
            0.0,
            "model default",
            "off",
            "the model's own",
            *DEFAULT_SCHEDULE,
            request=request,
            progress=no_progress,
        )
    )
    assert "Frame 6 of 6" in outputs[-1][1]


@pytest.mark.parametrize(
    ("position", "value", "field"),
    [(3, 50.5, "steps"), (3, 0, "steps"), (4, math.nan, "η"), (2, "euler", "sampler"), (0, "../etc", "folder")],
)
def test_run_refuses_bad_input(position, value, field):
    args = list(RUN)
    args[position] = value
    with pytest.raises(gr.Error, match=field):
        list(sampling.run(*args, "leading", 0, 4, request=FakeRequest("bad"), progress=no_progress))


def test_run_refuses_huge_batch_and_frames_without_a_run():
    with pytest.raises(gr.Error, match="batch"):
        _run(FakeRequest("huge"), batch=65)
    with pytest.raises(gr.Error, match="press Run"):
        sampling.show_frame(1, request=FakeRequest("nobody"))


def test_compare_shows_three_models():
    figure, picture, _summary, run_views = parameterizations.compare("digit", 4, 0, 500, request=FakeRequest("cmp"))
    labels = {trace.name for trace in figure.data if trace.showlegend is not False}
    assert {"digits-eps (ε-prediction)", "digits-x0 (x₀-prediction)", "digits-v (v-prediction)"} <= labels
    assert isinstance(picture, Image.Image) and run_views is None
    assert figure.layout.annotations[4].text.startswith("KL term")
    with pytest.raises(gr.Error, match="t must be"):
        parameterizations.compare("digit", 4, 0, 1001, request=FakeRequest("cmp"))
    with pytest.raises(gr.Error, match="data must be"):
        parameterizations.picture_at("uploaded image", 0, 10)
    width, height = parameterizations.picture_at("moons", 0, 10).size
    assert width >= 3 * 160 and height >= 4 * 160  # truth and three models, three 160-pixel scatter panels each


def test_restore_reads_query_parameters():
    request = FakeRequest()
    request.query_params = {
        "tab": "sampling",
        "schedule": "cosine",
        "t": "300",
        "seed": "3",
        "steps": "8",
        "frame": "5",
    }
    _tab, family, t, _model, seed, steps, frame, _large = restore.restore(request)
    assert family == "squaredcos_cap_v2" and t == 300 and seed == 3 and steps == 8 and frame == 5


def test_a_url_frame_runs_the_model_and_shows_that_frame():
    request = FakeRequest("url-frame")
    args = ["digits-eps", "", "ddim", 6, 0.0, "model default", "model default", "the model's own"]
    args += [*DEFAULT_SCHEDULE, "leading", 3, 2]
    *_streamed, last = sampling.open_frame(4, *args, request=request, progress=no_progress)
    picture, text, slider, _plot, _finals = last
    assert "Frame 4 of 6" in text and slider.value == 4 and slider.maximum == 6
    assert picture.size == sampling.frame_picture(sampling.STORE.get("url-frame").compact, 3).size
    *_, beyond = sampling.open_frame(50, *args, request=request, progress=no_progress)
    assert "Frame 6 of 6" in beyond[1]  # past the end: the last frame
    skipped = list(sampling.open_frame(None, *args, request=FakeRequest("no-frame"), progress=no_progress))
    assert len(skipped) == 1 and sampling.STORE.get("no-frame") is None  # no frame= in the URL: no run
