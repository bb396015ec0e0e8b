"""Client-side frames (ui.frames), captions inside pictures, exports, and branches kept beside their run."""

from __future__ import annotations

import base64
import io
import json

import gradio as gr
import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from app_fixtures import FakeRequest, ensure_models, no_progress
from fastapi import HTTPException
from PIL import Image

ensure_models()
from explorer.figures.images import labelled_row, to_uint8, with_caption  # noqa: E402
from explorer.figures.sampling import diagnostics_figure, run_diagnostics  # noqa: E402
from ui import (  # noqa: E402
    branches,
    exports,
    frames,
    run_pictures,
    sampling,
    state,
)
from ui import runs as lifecycle  # noqa: E402
from ui.controls import RunValues, ScheduleValues, StepValues  # noqa: E402


def _run(session: str, **changes) -> state.StoredRun:
    values = RunValues(**{"steps": 6, "batch": 4, "seed": 0, **changes})
    request = FakeRequest(session)
    list(sampling.run(values, StepValues(), ScheduleValues(), request=request, progress=no_progress))
    return state.stored_run(request)


def _picture(url: str) -> Image.Image:
    head, data = url.split(",", 1)
    assert head == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(data)))


@pytest.fixture(scope="module")
def digits() -> state.StoredRun:
    return _run("frames-digits")


def test_payload_holds_every_frame_of_a_small_run_with_its_pixels_caption_and_text(digits):
    compact = digits.compact
    data = frames.payload(digits, 2)
    assert data["key"] == digits.key and data["total"] == 6 and data["first"] == 1 and data["start"] == 2
    assert sorted(map(int, data["frames"])) == list(range(6))
    for k in range(6):
        assert data["texts"][k] == frames.frame_text(compact, k) == sampling.frame_text(compact, k)
        t = int(compact.timesteps[k]) + 1  # paper t of the step (the test states it independently)
        assert data["captions"][k].startswith(f"frame {k + 1} of 6 · t = {t} → ")
    assert data["captions"][-1].endswith("→ 0 (data)")
    # The strip is the seven views at native size: 4 digits of 16 px in a 2 × 2 grid with 2 px gaps = 34 px per view.
    assert (data["height"], [p[2] for p in data["panels"]]) == (34, [34] * 7)
    # digits-eps predicts ε: its panel says so, the other three prediction spaces say they were converted from it
    titles = ["x_t", "x̂₀ from ε̂", "ε̂ (±3) predicted", "v̂ (±3) from ε̂", "û (±4) from ε̂", "μ", "noise z (±3)"]
    assert [p[0] for p in data["panels"]] == titles
    strip = np.asarray(_picture(data["frames"]["4"]))
    assert strip.shape == (34, data["width"])
    expected = to_uint8(compact.view("x_t", 4))[:, :, :, 0]  # [B, 16, 16]
    np.testing.assert_array_equal(strip[:16, :16], expected[0])
    np.testing.assert_array_equal(strip[18:34, 18:34], expected[3])
    eps_left = data["panels"][2][1]
    np.testing.assert_array_equal(strip[:16, eps_left : eps_left + 16], to_uint8(compact.view("eps", 4) / 3)[0, ..., 0])
    # û = ε̂ − x̂₀ (the flow velocity at the σ of equal SNR), drawn on ±4; fp16 storage moves a pixel by one level
    u_left = data["panels"][4][1]
    u = (compact.view("eps", 4).double() - compact.view("x0", 4).double()) / 4
    drawn = strip[:16, u_left : u_left + 16].astype(int)
    assert np.abs(drawn - to_uint8(u.float())[0, ..., 0].astype(int)).max() <= 1
    assert len(json.dumps(data)) < 200_000  # 6 frames of 4 digits: small


def test_a_run_over_the_budget_holds_an_even_subset_and_fetches_the_rest(digits, monkeypatch):
    held = frames.held_positions(1000, 33_000, 8_000_000)
    assert held[0] == 0 and held[-1] == 999 and len(held) == 242
    assert np.ptp(np.diff(held)) <= 1  # evenly spaced
    assert frames.held_positions(50, 33_000, 8_000_000).tolist() == list(range(50))
    strips = frames.Strips(digits.compact)
    mean = np.mean([len(frames.data_url(strips.strip(k)[0])) for k in range(6)])
    monkeypatch.setattr(frames, "FRAME_BUDGET", int(3.5 * mean))  # three frames fit
    data = frames.payload(digits, 2)
    assert set(data["frames"]) == {"0", "2", "5"} and "fetches the others" in data["note"]
    assert len(json.dumps(data)) < 3.5 * mean + 20_000
    fetched = frames.fetch_frames([digits.key, 3])
    assert set(fetched) == {"3", "4", "5"}
    assert fetched["3"] == frames.payload(digits, 3)["frames"]["3"]  # the same picture as a held frame
    for query, field, status in (
        ([digits.key, 6], "position", 400),
        (["no-such-key", 0], "Run", 404),
        ("x", "key, position", 400),
    ):
        with pytest.raises(HTTPException) as refused:  # a 4xx sentence, never a 500
            frames.fetch_frames(query)
        assert refused.value.status_code == status and field in refused.value.detail


def test_points_are_drawn_where_they_are():
    stored = _run("frames-moons", model="moons-eps", batch=64)
    data = frames.payload(stored, 0)
    assert data["height"] == frames.SCATTER_PIXELS
    assert data["width"] == 7 * frames.SCATTER_PIXELS + 6 * frames.PANEL_GAP
    strip = np.asarray(_picture(data["frames"]["5"]).convert("RGB")).astype(int)
    x0 = stored.compact.view("x0", 5).numpy()
    extent, size = 3.5, frames.SCATTER_PIXELS
    left = data["panels"][1][1]
    for x, y in x0[:8]:
        if abs(x) < extent and abs(y) < extent:
            px, py = (
                round((x + extent) / (2 * extent) * (size - 1)),
                size - 1 - round((y + extent) / (2 * extent) * (size - 1)),
            )
            assert tuple(strip[py, left + px]) == (31, 119, 180)


def test_every_picture_carries_its_caption_inside(digits):
    compact = digits.compact
    picture = run_pictures.frame_picture(compact, 2)
    bare = labelled_row([("x", Image.new("RGB", (picture.width, 40), "white"))])
    assert picture.width >= bare.width
    band = np.asarray(picture.convert("L"))[-20:]
    assert (band < 100).any()  # dark text in the caption band
    other = np.asarray(run_pictures.frame_picture(compact, 3).convert("L"))[-20:]
    assert not np.array_equal(band, other)  # the caption names the frame
    narrow = with_caption(Image.new("RGB", (10, 10), "white"), "frame 1000 of 1000 · t = 1000 → 999")
    assert narrow.width > 10 and narrow.height > 10  # widened to hold its caption


def test_export_has_a_size_option_a_held_last_frame_and_a_png_of_one_frame(digits):
    request = FakeRequest("frames-digits")
    small, _ = sampling.export(1, request=request)
    gif, mp4 = sampling.export(3, request=request)
    with Image.open(gif) as animation, Image.open(small) as little:
        assert animation.n_frames == 6 + 1  # every frame and the final samples
        assert animation.width == 2 * 3 * 34 + 8  # x_t and x̂₀ grids (34 px natively) at 3×, 8 px apart
        assert little.height < animation.height - 2 * 34
        durations = []
        for k in range(animation.n_frames):
            animation.seek(k)
            durations.append(animation.info["duration"])
        assert durations[-1] >= durations[0] + 1000 * exports.HOLD_LAST - 1
    assert imageio.get_reader(mp4).count_frames() == 7 + round(exports.HOLD_LAST * exports.EXPORT_FPS)
    png = sampling.frame_png(4, 2, request=request)
    with Image.open(png) as one:
        assert one.width > 6 * 2 * 34
        assert (np.asarray(one.convert("L"))[-20:] < 100).any()
    for bad in (0, 9, 2.5):
        with pytest.raises(gr.Error, match="export size"):
            sampling.export(bad, request=request)


def test_branch_honours_steps_and_stands_beside_the_run():
    request = FakeRequest("frames-branch")
    run = _run("frames-branch", steps=8).compact
    step = StepValues(sampler="ddim")
    list(sampling.branch(3, step, ScheduleValues(), 5, request=request, progress=no_progress))
    runs = state.session_runs(request)
    assert runs.run.compact is run and len(runs.branch.compact) == 5 and runs.shown is state.Which.BRANCH
    assert state.stored_run(request).compact is runs.branch.compact
    assert torch.equal(runs.branch.compact.x_t[:3], run.x_t[:3])  # frames 1..3 kept; 3 is the restart state
    assert runs.branch.compact.settings.sampler.value == "ddim"
    assert runs.branch.compact.timesteps.tolist()[:2] == run.timesteps.tolist()[:2]
    sentence = branches.branch_sentence(run.settings, runs.branch.compact.settings, 2)
    assert sentence == "Branch from frame 3: sampler ddim (run: ddpm), 3 remaining steps (run: 6); the same noise."
    after = sampling.frames_after(4, request=request)
    payload = after.player
    assert payload["which"] == "branch" and payload["total"] == 5 and payload["start"] == 3
    assert after.branch_note == sentence and (after.frame, after.frames) == (4, 5)
    assert [value for _, value in after.choices] == ["run", "branch"] and after.shown == "branch"
    assert [value for _, value in after.updates()["run_choice"].constructor_args["choices"]] == ["run", "branch"]
    chosen = sampling.choose("run", 4, request=request)
    assert chosen.player["which"] == "run" and chosen.player["total"] == 8
    assert state.stored_run(request).compact is run
    assert chosen.updates()["frame"].constructor_args["maximum"] == 8
    figure = lifecycle.diagnostics_of(state.session_runs(request))
    assert len(figure.data) == 14 and len({trace.legendgroup for trace in figure.data}) == 7  # one per quantity
    assert [trace.name for trace in figure.data if trace.showlegend is not False] == [t.name for t in figure.data[:7]]
    assert all(trace.name.endswith("· branch from frame 3") for trace in figure.data[7:])
    assert "branch from frame 3" in figure.layout.legend.title.text
    with pytest.raises(gr.Error, match="steps"):
        list(sampling.branch(3, step, ScheduleValues(), 2, request=request, progress=no_progress))
    with pytest.raises(gr.Error, match="run choice"):
        sampling.choose("other", 1, request=request)


def test_a_branch_with_the_runs_steps_keeps_its_timesteps_and_says_so():
    request = FakeRequest("frames-same")
    run = _run("frames-same", steps=6).compact
    list(sampling.branch(2, StepValues(), ScheduleValues(), 6, request=request, progress=no_progress))
    branch = state.session_runs(request).branch.compact
    assert branch.timesteps.tolist() == run.timesteps.tolist()
    assert "the run's own settings" in branches.branch_sentence(run.settings, branch.settings, 1)
    state.keep_run(request, run, "digits-eps")  # a new run: the branch goes
    assert state.session_runs(request).branch is None


def test_diagnostics_without_a_branch_have_one_trace_per_quantity(digits):
    figure = diagnostics_figure(run_diagnostics(digits.compact, digits.compact.settings.schedule))
    assert len(figure.data) == 7 and {trace.legendgroup for trace in figure.data} == {t.name for t in figure.data}
    assert figure.layout.legend.title.text is None


def test_stop_says_what_stepping_shows():
    assert "had already finished and is kept" in sampling.stopped(FakeRequest("frames-digits"))  # nothing was running
    assert "press **Run**" in sampling.stopped(FakeRequest("frames-nobody"))
