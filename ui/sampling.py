"""Reverse sampling view: run a model with streamed frames, then step through every frame without the model."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from explorer.data import Dataset, exact_training_set, nearest
from explorer.diffusion.indexing import frame_of, paper_t, position_of
from explorer.diffusion.sampler import branch_settings, iterate, iterate_branch
from explorer.diffusion.trajectory import CompactRecorder, CompactTrajectory, Step
from explorer.diffusion.views import STEP_VIEWS, X0, X_T
from explorer.figures.images import export_gif, export_mp4, image_grid, labelled_row, scatter_frame
from explorer.figures.sampling import diagnostics_figure, run_diagnostics
from explorer.validation import check_int
from ui.common import MODEL_WORK, on_gpu, slider_events, user_errors
from ui.controls import (
    MAX_STEPS,
    One,
    RunControls,
    RunValues,
    ScheduleControls,
    ScheduleValues,
    StepValues,
    bind,
    check_controls,
    event_inputs,
    parse_run,
)
from ui.models import dataset_of, is_bundled, load_model
from ui.state import keep_run, stored_run

STREAM_FRAMES = 40  # at most this many pictures are streamed while a run computes
EXPORT_ROOT = Path(tempfile.gettempdir()) / "explorer-exports"
EXPORT_AGE_SECONDS = 300.0  # Gradio copies a served file into its own (swept) cache as the handler returns
EXPORT_FRAMES = 120
PANEL_PIXELS = 200
EXACT_NOTE = """**Why learn p<sub>θ</sub> at all?** The `exact-*` models are the optimal denoiser E[x₀ | x<sub>t</sub>]
of a finite training set, run through the same sampler on the same noise: the exact reverse of that set can only copy
its examples (nearest distance ≈ 0 beside the final samples), while a network trained on the data makes new ones."""
INTRO = """### Run a real model backwards, then step through every frame
Each frame shows, for the whole batch, the state x<sub>t</sub> entering the step, the model's prediction in all three
spaces (x̂₀, ε̂, v̂), the mean μ of the step and the noise z it adds: x<sub>t−1</sub> = μ + σ z. Scrubbing frames never
calls the model. t is the paper's step, 1..T. Keyboard: ← and → step through frames."""


# --- pictures of one frame --------------------------------------------------------------------


def _panel(batch: torch.Tensor, half_range: float) -> Image.Image:
    """One view of the whole batch: an image grid, or a scatter of points."""
    if batch.ndim == 2:  # points [B, 2]
        return scatter_frame(batch, size=PANEL_PIXELS, extent=3.5 * half_range)
    count, _, height, _ = batch.shape
    columns = math.ceil(math.sqrt(count))
    scale = max(1, PANEL_PIXELS // (columns * (height + 2)))
    return image_grid(batch / half_range, columns=columns, scale=scale)


def frame_picture(compact: CompactTrajectory, index: int) -> Image.Image:
    """Step `index` of a compact run: every view of the whole batch, side by side with titles."""
    return labelled_row([(view.title, _panel(compact.view(view.name, index), view.half_range)) for view in STEP_VIEWS])


def frame_text(compact: CompactTrajectory, index: int) -> str:
    """Per-frame diagnostics of step `index` in one Markdown line."""
    t, s = paper_t(int(compact.timesteps[index])), paper_t(int(compact.prev_timesteps[index]))
    x_t, eps, x0 = (compact.view(name, index) for name in ("x_t", "eps", "x0"))
    rms = float(x_t.flatten(1).pow(2).mean(dim=1).sqrt().mean())
    clipped = float(compact.clipped_fraction[index].mean())
    spread = float(eps.flatten(1).std(dim=1).mean())
    return (
        f"**Frame {frame_of(index)} of {len(compact)}**: t = {t} → {s if s > 0 else '0 (data)'} · RMS of "
        f"x<sub>t</sub> {rms:.3f} · std of ε̂ {spread:.3f} (≈ 1 expected at high t, where noise dominates) · "
        f"x̂₀ in [{float(x0.min()):.2f}, {float(x0.max()):.2f}] · clipped {100 * clipped:.1f}% "
        f"· σ {float(compact.std[index].mean()):.4f}"
    )


def _frame_slider(compact: CompactTrajectory, index: int) -> gr.Slider:
    return gr.Slider(minimum=1, maximum=len(compact), value=frame_of(index), step=1, interactive=True)


def _streamed(step: Step, done: int, total: int) -> tuple:
    views = [(view.title, _panel(getattr(step, view.name), view.half_range)) for view in STEP_VIEWS]
    status = f"computing step {done} of {total} (t = {paper_t(step.timestep)})"
    return labelled_row(views), status, gr.skip(), gr.skip(), gr.skip()


def _finish(compact: CompactTrajectory, model: str, request: gr.Request | None) -> tuple:
    """Keep the run for this session; show its last frame, the diagnostics and the final samples."""
    keep_run(request, compact, model)
    last = len(compact) - 1
    figure = diagnostics_figure(run_diagnostics(compact, compact.settings.schedule))
    return (
        frame_picture(compact, last),
        frame_text(compact, last),
        _frame_slider(compact, last),
        figure,
        finals_picture(compact.samples, dataset_of(model)),
    )


def finals_picture(samples: torch.Tensor, dataset: Dataset | None) -> Image.Image:
    """The final samples; for a model of a bundled data set, beside each sample's nearest example of the set the
    exact denoiser reverses, with the mean distance (a copy lies at 0)."""
    if dataset is None:
        return _panel(samples, 1.0)
    data = exact_training_set(dataset)
    index, distance = nearest(samples, data)
    what = "training digit" if dataset is Dataset.DIGITS else f"of the {len(data):,} points"
    title = f"nearest {what} · mean distance {float(distance.mean()):.2f} (min {float(distance.min()):.2f})"
    if samples.ndim == 2:  # points: the samples over the finite set, grey
        return labelled_row(
            [(title, scatter_frame(samples, size=PANEL_PIXELS * 2, extent=3.5, reference=data.numpy()))]
        )
    return labelled_row([("final samples", _panel(samples, 1.0)), (title, _panel(data[index], 1.0))])


def _frame_index(compact: CompactTrajectory, frame: Any) -> int:
    """The run position of a frame number from the page (checked against the run's length)."""
    return position_of(check_int("frame", frame, 1, len(compact)))


# --- handlers ---------------------------------------------------------------------------------


@on_gpu
@user_errors
def run(
    values: RunValues,
    step: StepValues,
    schedule: ScheduleValues,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (how Gradio finds the progress bar)
):
    """Sample with streamed frames, recording compactly as it goes; at the end the run is kept for this session."""
    denoiser, settings = parse_run(values, step, schedule)
    recorder = CompactRecorder(denoiser.name, denoiser.prediction, settings)
    total = settings.num_inference_steps
    every = max(1, total // STREAM_FRAMES)
    with torch.no_grad():
        for record in iterate(denoiser, settings):
            recorder.add(record)
            progress((recorder.count, total), desc="sampling", unit="steps")
            if recorder.count % every == 0 and recorder.count < total:
                yield _streamed(record, recorder.count, total)
    yield _finish(recorder.finish(), values.ref, request)


@on_gpu
@user_errors
def branch(
    frame: float,
    step: StepValues,
    schedule: ScheduleValues,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (how Gradio finds the progress bar)
):
    """Rerun the rest of the stored run from this frame with changed settings, on the same noise stream."""
    stored = stored_run(request)
    compact = stored.compact
    index = _frame_index(compact, frame)
    denoiser = load_model(stored.model)
    settings = branch_settings(compact.settings, denoiser, index, **step.parse(schedule))
    recorder = CompactRecorder.continuing(compact, index, settings)  # compact as it goes, like a run
    total = settings.num_inference_steps
    yield gr.skip(), f"branching from frame {frame_of(index)}…", gr.skip(), gr.skip(), gr.skip()
    with torch.no_grad():
        for record in iterate_branch(denoiser, settings, compact.x_t[index], index):
            recorder.add(record)
            progress((recorder.count, total), desc="branch", unit="steps")
    yield _finish(recorder.finish(), stored.model, request)


@user_errors
def open_frame(
    target: int | None,
    values: RunValues,
    step: StepValues,
    schedule: ScheduleValues,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
):
    """A talk's URL with frame=N: run a bundled model with the restored controls, then show frame N (beyond the
    run: its last). A Hub model named in a link is shown and runs only when the visitor presses Run. Opening the
    page never loads or downloads anything: without frame= the controls are only checked.
    """
    check_controls(values, step, schedule)
    if target is None:
        yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return
    if not is_bundled(values.ref):
        note = f"This link names the Hub model `{values.ref}`: press **Run** to download and run it."
        yield gr.skip(), note, gr.skip(), gr.skip(), gr.skip()
        return
    yield from run(values, step, schedule, request=request, progress=progress)
    compact = stored_run(request).compact
    index = min(position_of(check_int("frame", target, 1, MAX_STEPS)), len(compact) - 1)
    yield frame_picture(compact, index), frame_text(compact, index), _frame_slider(compact, index), gr.skip(), gr.skip()


@user_errors
def show_frame(frame: float, request: gr.Request = None):
    """Frame `frame` (1..number of steps) of this session's run: picture and diagnostics; no model call."""
    compact = stored_run(request).compact
    index = _frame_index(compact, frame)
    return frame_picture(compact, index), frame_text(compact, index)


@user_errors
def step_frame(frame: float, delta: float, request: gr.Request = None):
    """Move `delta` frames (clamped to the run) and show that frame; returns the new frame number too."""
    compact = stored_run(request).compact
    current = _frame_index(compact, frame)
    move = check_int("step", delta, -MAX_STEPS, MAX_STEPS)
    index = min(max(current + move, 0), len(compact) - 1)
    return frame_of(index), frame_picture(compact, index), frame_text(compact, index)


@user_errors
def export(request: gr.Request = None):
    """The run as a GIF and an MP4 (x_t and x̂₀ side by side, at most EXPORT_FRAMES frames)."""
    compact = stored_run(request).compact
    indices = np.unique(np.round(np.linspace(0, len(compact) - 1, min(EXPORT_FRAMES, len(compact)))).astype(int))
    frames = [
        labelled_row([(view.symbol, _panel(compact.view(view.name, k), 1.0)) for view in (X_T, X0)]) for k in indices
    ]
    frames.append(labelled_row([("x_0", _panel(compact.samples, 1.0)), ("final", _panel(compact.samples, 1.0))]))
    sweep_exports(EXPORT_AGE_SECONDS)
    EXPORT_ROOT.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=EXPORT_ROOT))
    return str(export_gif(frames, folder / "run.gif")), str(export_mp4(frames, folder / "run.mp4"))


def sweep_exports(age: float | None = None) -> int:
    """Remove export folders older than `age` seconds (all with None, as at startup); returns how many went.

    Also removes the `explorer-export-*` folders earlier versions left in the temporary directory.
    """
    now, removed = time.time(), 0
    folders = [*EXPORT_ROOT.glob("*"), *Path(tempfile.gettempdir()).glob("explorer-export-*")]
    for folder in folders:
        try:
            if folder.is_dir() and not folder.is_symlink() and (age is None or now - folder.stat().st_mtime > age):
                shutil.rmtree(folder)
                removed += 1
        except OSError:  # another process removed it first
            continue
    return removed


def stopped() -> str:
    """What the status line says after Stop: the cancelled run was not kept."""
    return "**Stopped.** That run was not kept; the frames below (if any) are from this session's last finished run."


@user_errors
def toggle_play(playing: bool):
    """Play/pause: start or stop the frame timer."""
    now = not bool(playing)
    return now, gr.Timer(active=now), gr.Button(value="⏸ Pause" if now else "▶ Play")


@user_errors
def tick(frame: float, request: gr.Request = None):
    """One timer tick while playing: the next frame, or stop at the last one."""
    compact = stored_run(request).compact
    current = _frame_index(compact, frame)
    if current >= len(compact) - 1:
        return frame_of(current), gr.skip(), gr.skip(), False, gr.Timer(active=False), gr.Button(value="▶ Play")
    index = current + 1
    return frame_of(index), frame_picture(compact, index), frame_text(compact, index), True, gr.skip(), gr.skip()


# --- layout -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingTab:
    """What the app needs from the Reverse sampling view: its controls, and the page-load event's parts."""

    controls: RunControls
    frame: gr.Slider  # the frame shown
    open_frame: Any  # the event function for a URL with frame=N
    open_inputs: set
    outputs: list


def build(schedule: ScheduleControls, url_frame: gr.State) -> SamplingTab:
    """Lay out the view; `schedule` is schedule 1's group (a run may follow it), `url_frame` the frame= of the URL."""
    gr.Markdown(INTRO)
    controls = RunControls()
    with gr.Row():
        run_button = gr.Button("Run", variant="primary", elem_id="run")
        stop_button = gr.Button("Stop", variant="stop", elem_id="stop")
        branch_button = gr.Button("Branch from this frame (settings above, same noise)", elem_id="branch")
        export_button = gr.Button("Export GIF + MP4", elem_id="export")
    status = gr.Markdown("Press **Run**.", elem_id="frame_text")
    picture = gr.Image(label="frame", format="png", type="pil", interactive=False, elem_id="frame")
    with gr.Row():
        previous = gr.Button("◀ Previous", elem_id="prev_frame", size="sm")
        play = gr.Button("▶ Play", elem_id="play", size="sm")
        following = gr.Button("Next ▶", elem_id="next_frame", size="sm")
        frame = gr.Slider(1, 2, value=1, step=1, label="frame (step of the run)", elem_id="frame_slider", scale=4)
    playing = gr.State(False)
    timer = gr.Timer(0.3, active=False)
    diagnostics = gr.Plot(label="over the run", elem_id="diagnostics")
    with gr.Row():
        finals = gr.Image(label="final samples", format="png", type="pil", interactive=False, elem_id="finals")
    gr.Markdown(EXACT_NOTE)
    with gr.Row():
        gif = gr.File(label="GIF")
        mp4 = gr.File(label="MP4")

    outputs = [picture, status, frame, diagnostics, finals]
    run_groups = (controls, controls.step, schedule)
    run_event = run_button.click(
        bind(run, *run_groups), event_inputs(*run_groups), outputs, api_name="run", **MODEL_WORK
    )
    branch_groups = (One(frame), controls.step, schedule)
    branch_event = branch_button.click(
        bind(branch, *branch_groups), event_inputs(*branch_groups), outputs, api_name="branch", **MODEL_WORK
    )
    stop_button.click(stopped, None, [status], cancels=[run_event, branch_event], api_visibility="private")
    gr.on(
        triggers=slider_events(frame),
        fn=show_frame,
        inputs=[frame],
        outputs=[picture, status],
        trigger_mode="always_last",
        concurrency_limit=None,
        api_name="frame",
        show_progress="hidden",
    )
    for button, delta, name in ((previous, -1, "previous_frame"), (following, 1, "next_frame")):
        button.click(
            step_frame,
            [frame, gr.Number(delta, visible=False)],
            [frame, picture, status],
            concurrency_limit=None,
            api_name=name,
            show_progress="hidden",
        )
    play.click(toggle_play, [playing], [playing, timer, play], api_visibility="private", show_progress="hidden")
    timer.tick(
        tick,
        [frame],
        [frame, picture, status, playing, timer, play],
        api_visibility="private",
        show_progress="hidden",
        concurrency_limit=None,
    )
    export_button.click(export, None, [gif, mp4], api_name="export", **MODEL_WORK)
    open_groups = (One(url_frame), *run_groups)
    return SamplingTab(controls, frame, bind(open_frame, *open_groups), event_inputs(*open_groups), outputs)
