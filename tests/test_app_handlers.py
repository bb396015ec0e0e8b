"""The app's handlers called as plain functions: what they return, and gr.Error on bad input."""

from __future__ import annotations

import math

import gradio as gr
import numpy as np
import pytest
import torch
from app_fixtures import FakeRequest, ensure_models, no_progress
from PIL import Image

from ui import bound, parameterizations, posterior, run_pictures, runs, sampling, schedules, state
from ui.controls import RunValues, ScheduleValues, StepValues
from ui.models import bundled_models
from ui.posterior import PosteriorValues
from ui.schedules import ViewValues

SLOTS = (ScheduleValues("linear"), ScheduleValues("squaredcos_cap_v2"), ScheduleValues("linear", zero_snr=True))


def update_schedules(view: ViewValues = ViewValues(), **slot_changes: ScheduleValues):  # noqa: B008
    """The Schedules handler with the page's defaults; `first=`, `second=`, `third=` replace a schedule."""
    slots = [slot_changes.get(name, slot) for name, slot in zip(("first", "second", "third"), SLOTS, strict=True)]
    return schedules.update_schedules(view, *slots)


@pytest.fixture(scope="module", autouse=True)
def models():
    ensure_models()


def test_schedules_returns_figure_tables_and_strip():
    figure, table, formulas, spacings, strip, caption, t, steps = update_schedules()
    assert t.maximum == 1000 and steps.maximum == 1000  # inside T: only the range is sent
    names = {trace.name for trace in figure.data if trace.name}  # unnamed traces: markers and bands
    assert any(name.startswith("1: linear") for name in names)
    assert any(name.startswith("2: squaredcos_cap_v2") for name in names)
    assert "β_t" in table and r"\tilde\beta_{500}" in formulas
    assert "| leading | 50 | 981 |" in spacings
    assert isinstance(strip, Image.Image) and strip.mode == "L"
    assert "t = 20, 50" in caption


def test_schedules_against_beta_and_at_the_ends():
    figure, *_ = update_schedules(ViewValues(x_axis="β_t", t=1))
    assert figure.layout.xaxis.type == "log"
    _, table, _formulas, *_, t, steps = update_schedules(ViewValues(t=4000))  # beyond T: clamped to T = 1000
    assert "t = 1000" in table and t.value == 1000 and t.maximum == 1000 and steps.maximum == 1000  # the slider follows


@pytest.mark.parametrize(
    ("view", "first", "field"),
    [
        (ViewValues(t=math.nan), ScheduleValues(), "t"),
        (ViewValues(t=50.5), ScheduleValues(), "t"),
        (ViewValues(num_steps=0), ScheduleValues(), "sampling steps"),
        (ViewValues(), ScheduleValues(T=1), "schedule 1 T"),
        (ViewValues(), ScheduleValues(beta_start=0.5), "schedule 1 β start must not exceed"),
        (ViewValues(), ScheduleValues(beta_end=1.5), "schedule 1 β end"),
        (ViewValues(), ScheduleValues(family="quadratic"), "schedule 1 family"),
        (ViewValues(x_axis="log t"), ScheduleValues(), "x axis"),
        (ViewValues(), ScheduleValues(zero_snr="yes"), "schedule 1 zero terminal SNR"),
        (ViewValues(show3="no"), ScheduleValues(), "show schedule 3"),
    ],
)
def test_schedules_refuse_bad_input(view, first, field):
    with pytest.raises(gr.Error, match=field):
        update_schedules(view, first=first)


def test_a_hidden_schedule_is_still_checked():
    with pytest.raises(gr.Error, match="schedule 3 T"):
        update_schedules(ViewValues(show3=False), third=ScheduleValues(T=0))


def test_t_and_the_step_count_follow_T():
    *_, t, steps = update_schedules(first=ScheduleValues(T=100))  # t = 500 and 50 steps: t beyond T
    assert t.value == 100 and t.maximum == 100 and steps.maximum == 100  # both ranges end at T
    *_, t, steps = update_schedules(ViewValues(t=150, num_steps=400), first=ScheduleValues(T=300))
    assert t.maximum == 300 and steps.value == 300


@pytest.mark.parametrize("source", ["digit", "moons", "ring"])
def test_posterior_views(source):
    values = PosteriorValues(source=source, index=3, t=200, pixel=120, step=10)
    picture, _caption, numbers, product, _derivation, reverse = posterior.update_posterior(values, ScheduleValues())
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
    values = PosteriorValues(source="ring", t=100, pixel=0, step=500)
    *_, reverse = posterior.update_posterior(values, ScheduleValues())
    assert "q(x<sub>1</sub> | x<sub>100</sub>)" in reverse.layout.annotations[0].text  # Δ clamped: s ≥ 1


@pytest.mark.parametrize(("index", "field"), [(1001, "example"), (math.inf, "example"), (-1, "example")])
def test_posterior_refuses_bad_input(index, field):
    with pytest.raises(gr.Error, match=field):
        posterior.update_posterior(PosteriorValues(index=index), ScheduleValues())


def test_posterior_refuses_missing_upload():
    with pytest.raises(gr.Error, match="no image was uploaded"):
        posterior.update_posterior(PosteriorValues(source="uploaded image"), ScheduleValues())


def test_posterior_refuses_upload_on_a_space(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/space")
    with pytest.raises(gr.Error, match="only when the app runs locally"):
        posterior.update_posterior(PosteriorValues(source="uploaded image"), ScheduleValues())


def _run(request, *, step: StepValues = StepValues(), **changes):  # noqa: B008
    values = RunValues(**{"steps": 4, "batch": 4, "seed": 0, **changes})
    return list(sampling.run(values, step, ScheduleValues(), request=request, progress=no_progress))


def test_run_streams_then_frames_step_without_the_model():
    request = FakeRequest("handlers-run")
    outputs = _run(request)
    last = outputs[-1]
    assert isinstance(last.picture, Image.Image) and "Frame 4 of 4" in last.status
    assert (last.frame, last.frames, len(last.diagnostics.data)) == (4, 4, 7)
    slider = last.updates()["frame"]
    assert (slider.minimum, slider.maximum, slider.value) == (1, 4, 4)
    first = sampling.show_frame(1, request=request)
    assert "Frame 1 of 4" in first.status and first.picture.tobytes() != last.picture.tobytes()
    stepped = sampling.step_frame(4, 1, request=request)
    assert stepped.frame == 4 and "Frame 4 of 4" in stepped.status  # clamped at the end
    gif, mp4 = sampling.export(request=request)
    assert gif.endswith(".gif") and mp4.endswith(".mp4")


def test_stop_says_whether_the_run_was_stopped_or_had_already_finished():
    """Stop during a run: not kept, and the earlier run stays the one shown; Stop after the end: kept."""
    request = FakeRequest("handlers-stop")
    first = _run(request)
    kept = state.stored_run(request)
    assert "had already finished and is kept" in sampling.stopped(request=request)
    values = RunValues(steps=8, batch=2, seed=1)
    running = sampling.run(values, StepValues(), ScheduleValues(), request=request, progress=no_progress)
    next(running)  # the first streamed frame: the run is computing
    running.close()  # what Gradio does to a cancelled event's generator
    said = sampling.stopped(request=request)
    assert said.startswith("**Stopped.** That run was not kept") and state.stored_run(request) is kept
    assert "Frame 4 of 4" in first[-1].status


def test_branch_with_unchanged_settings_restarts_exactly():
    request = FakeRequest("handlers-exact-branch")
    _run(request, steps=6, batch=3)
    before = state.STORE.get(request.session_hash).compact
    list(sampling.branch(3, StepValues(), ScheduleValues(), request=request, progress=no_progress))
    after = state.STORE.get(request.session_hash).compact
    assert after is not before
    assert torch.equal(after.x_t[:3], before.x_t[:3])  # frames 1..3 kept; frame 3 (index 2) is the restart state
    # the sampler carries x_t in float64 on the CPU but records it in float32: later frames agree to rounding
    torch.testing.assert_close(after.x_t, before.x_t, rtol=0, atol=1e-5)
    torch.testing.assert_close(after.samples, before.samples, rtol=0, atol=1e-5)


def test_run_on_points_and_branch():
    request = FakeRequest("handlers-branch")
    _run(request, model="moons-v", batch=64, steps=6)
    changes = StepValues(sampler="ddim", clip="off")
    outputs = list(sampling.branch(3, changes, ScheduleValues(), request=request, progress=no_progress))
    assert "Frame 6 of 6" in outputs[-1].status


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"steps": 50.5}, "steps"),
        ({"steps": 0}, "steps"),
        ({"step": StepValues(eta=math.nan)}, "η"),
        ({"step": StepValues(sampler="euler")}, "sampler"),
        ({"model": "../etc"}, "folder"),
        ({"spacing": "random"}, "spacing"),
        ({"seed": -1}, "seed"),
    ],
)
def test_run_refuses_bad_input(changes, field):
    with pytest.raises(gr.Error, match=field):
        _run(FakeRequest("bad"), **changes)


def test_a_run_too_large_for_the_session_is_refused_before_it_starts_and_says_what_fits(monkeypatch):
    calls = []
    monkeypatch.setattr(runs, "iterate", lambda *a, **k: calls.append(1) or iter(()))
    fits = r"would keep 219\.3 MiB .* at most 339 steps at batch 64 or batch 28 at 1000 steps would fit"
    with pytest.raises(gr.Error, match=fits):
        _run(FakeRequest("too-large"), steps=1000, batch=64)
    assert calls == []  # refused before the model ran a single step


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
    assert any(note.text.startswith("KL term") for note in figure.layout.annotations)
    with pytest.raises(gr.Error, match="t must be"):
        parameterizations.compare("digit", 4, 0, 1001, request=FakeRequest("cmp"))
    with pytest.raises(gr.Error, match="data must be"):
        parameterizations.picture_at("uploaded image", 0, 10)
    width, height = parameterizations.picture_at("moons", 0, 10).size
    assert width >= 3 * 160 and height >= 4 * 160  # truth and three models, three 160-pixel scatter panels each


def test_the_parameterizations_tab_fills_on_open_and_shows_the_last_run_with_its_t():
    request = FakeRequest("table-open")
    empty = parameterizations.open_tab("moons", 3, 0, 10, request=request)
    assert len(empty) == parameterizations.OPEN_OUTPUTS and empty[3] is None  # no run yet: nothing to show
    table_plot, rows = empty[4], empty[5]
    assert {"RMS of ε", "ε: SNR", "min-SNR-5: min(SNR, 5)"} <= {trace.name for trace in table_plot.data}
    assert "moons-eps-minsnr5" in rows and rows.count("\n|") >= 6  # header, rule, ε, x₀, v, u, min-SNR
    _run(request, steps=5, batch=4)
    run_views = parameterizations.trajectory_views(request)
    assert isinstance(run_views, Image.Image)
    skipped = parameterizations.open_if_shown("sampling", "moons", 3, 0, 10, request=request)
    assert len(skipped) == parameterizations.OPEN_OUTPUTS
    shown = parameterizations.open_if_shown(parameterizations.TAB_ID, "moons", 3, 0, 10, request=request)
    assert isinstance(shown[3], Image.Image) and shown[3].size == run_views.size
    with pytest.raises(gr.Error, match="data must be"):
        parameterizations.parameterization_table("uploaded image", 0)


def test_the_bound_tab_fills_on_open_with_every_model_and_both_variances():
    skipped = bound.open_bound_if_shown("sampling", "ring", 0)
    assert len(skipped) == bound.OPEN_OUTPUTS
    figure, table = bound.open_bound_if_shown(bound.TAB_ID, "ring", 0)
    names = {trace.name.split(":")[0] for trace in figure.data}
    shown = [name for name in bundled_models() if name.startswith("ring-")] + ["exact-ring"]  # flow too, if bundled
    assert {"ring-eps", "ring-x0", "ring-v"} <= set(shown)
    for model in shown:
        assert {f"{model}, σ² = β̃_t", f"{model}, σ² = β_t"} <= names
    assert len(figure.data) == 2 * 2 * len(shown)  # two splits × two variances × every model
    assert "held-out data (bits/dim)" in table
    assert table.count("\n| ring-") + table.count("\n| exact-") == 2 * len(shown)
    with pytest.raises(gr.Error, match="data must be one of digits, moons, ring"):
        bound.show_bound("uploaded image", 0)
    with pytest.raises(gr.Error, match="seed must be"):
        bound.show_bound("ring", math.nan)


def _restored(**params: str) -> dict:
    """What the page load sets from a URL: {"tab", "frame", "present", then each control by name: value}."""
    import app

    request = FakeRequest()
    request.query_params = params
    tab, _tab_id, frame, present, *values = app.restore_page(request)
    return {"tab": tab, "frame": frame, "present": present, **dict(zip(app.controls, values, strict=True))}


def test_restore_reads_every_control_and_the_first_links_names():
    got = _restored(tab="sampling", schedule="cosine", t="300", seed="3", steps="8", frame="5", post_t="77", T2="50")
    assert got["family1"] == "squaredcos_cap_v2" and got["sched_t"] == 300 and got["post_t"] == 77
    assert got["seed"] == 3 and got["steps"] == 8 and got["frame"] == 5 and got["T2"] == 50
    assert got["tab"].selected == "sampling" and isinstance(got["batch"], dict)  # absent: left as it is


def test_restore_clamps_out_of_range_values_and_ignores_the_rest(recwarn):
    got = _restored(sched_t="5000", eta="-2", steps="2.5", sampler="euler", zsnr1="maybe", cmp_data="digit")
    assert (
        got["sched_t"] == 4000 and got["eta"] == 0
    )  # the view then moves t to T (1000) and got["steps"] == 2 and got["cmp_data"] == "digit"
    assert isinstance(got["sampler"], dict) and isinstance(got["zsnr1"], dict)  # not a choice: ignored
    shown = " ".join(str(w.message) for w in recwarn)
    assert "URL parameter sched_t is outside [1, 4000]: 4000 is used" in shown and "sampler" in shown
    assert "5000" not in shown and "euler" not in shown and "maybe" not in shown  # a URL's values are never echoed


def test_copy_link_writes_what_differs_and_it_restores():
    from urllib.parse import parse_qsl

    import app

    given = {component: component.value for component in app.controls.values()}
    given |= {app.controls["steps"]: 8, app.controls["post_t"]: 77, app.controls["family1"]: "sigmoid"}
    given |= {app.current_tab: "sampling", app.sampling_tab.frame: 4}
    query = app.restore.make_link(app.controls, app.current_tab, app.sampling_tab.frame)(given)
    params = dict(parse_qsl(query.removeprefix("?")))
    assert params == {"tab": "sampling", "steps": "8", "post_t": "77", "family1": "sigmoid", "frame": "4"}
    got = _restored(**params)
    assert got["steps"] == 8 and got["post_t"] == 77 and got["family1"] == "sigmoid" and got["frame"] == 4


def test_a_url_frame_runs_the_model_and_shows_that_frame():
    request = FakeRequest("url-frame")
    values, step, schedule = RunValues(steps=6, seed=3, batch=2), StepValues(sampler="ddim"), ScheduleValues()
    *_streamed, last = sampling.open_frame(4, values, step, schedule, request=request, progress=no_progress)
    assert "Frame 4 of 6" in last.status and (last.frame, last.frames) == (4, 6)
    assert last.picture.size == run_pictures.frame_picture(state.STORE.get("url-frame").compact, 3).size
    *_, beyond = sampling.open_frame(50, values, step, schedule, request=request, progress=no_progress)
    assert "Frame 6 of 6" in beyond.status  # past the end: the last frame
    no_frame = FakeRequest("no-frame")
    skipped = list(sampling.open_frame(None, values, step, schedule, request=no_frame, progress=no_progress))
    assert skipped == [sampling.FrameView()] and state.STORE.get("no-frame") is None  # no frame= in the URL: no run


def test_the_exact_denoiser_copies_its_training_set_and_the_network_does_not():
    """The page offers `exact-digits` beside the networks; on the same noise its samples are training digits."""
    from explorer.data import exact_training_set, nearest
    from ui.models import model_choices

    assert {"exact-digits", "exact-moons", "exact-ring", "digits-eps"} <= set(model_choices())
    finals = {}
    for model in ("exact-digits", "digits-eps"):
        request = FakeRequest(f"exact-vs-network-{model}")
        _run(request, model=model, steps=100, batch=8, seed=11)
        finals[model] = state.STORE.get(request.session_hash).compact
    exact, network = finals["exact-digits"], finals["digits-eps"]
    torch.testing.assert_close(exact.x_t[0], network.x_t[0])  # the same x_T: the same seed, the same noise
    train = exact_training_set("digits")
    _, copied = nearest(exact.samples, train)
    _, made = nearest(network.samples, train)
    assert float(copied.max()) < 0.05, copied  # every exact sample is a training digit
    assert float(made.min()) > 1.0, made  # every network sample is a new digit (held-out digits sit at ≈ 3.8)


def test_the_final_samples_show_the_nearest_training_example():
    request = FakeRequest("nearest-picture")
    finals = _run(request, model="exact-digits", steps=20, batch=4)[-1].finals
    single = run_pictures.finals_picture(state.STORE.get("nearest-picture").compact.samples, None)
    assert finals.width > 2 * single.width  # samples and their nearest training digits side by side
