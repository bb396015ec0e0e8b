"""Reverse sampling view: run a model with streamed frames, then step through every frame without the model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from explorer.diffusion.indexing import frame_of, paper_t, position_of
from explorer.diffusion.parameterization import Prediction
from explorer.diffusion.sampler import branch_settings, iterate, iterate_branch
from explorer.diffusion.settings import SamplerSettings
from explorer.diffusion.trajectory import CompactRecorder, CompactTrajectory, Step, compact_nbytes
from explorer.diffusion.views import STEP_VIEWS, X0, X_T
from explorer.figures.images import (
    labelled_row,
    with_caption,
)
from explorer.figures.sampling import diagnostics_figure, frame_caption, run_diagnostics
from explorer.models.decoders import Decoder
from explorer.validation import check_choice, check_int
from ui import admission, frames
from ui.api_names import named
from ui.common import MODEL_WORK, on_gpu, user_errors
from ui.controls import (
    MAX_STEPS,
    One,
    RunControls,
    RunValues,
    ScheduleControls,
    ScheduleValues,
    StepValues,
    bind,
    bind_model,
    check_controls,
    event_inputs,
    is_guided,
    model_info,
    parse_run,
)
from ui.estimate import long_run_note, record_run_time, run_seconds, zero_gpu_seconds
from ui.exports import export, export_controls, export_steps, frame_png  # noqa: F401 (export: for callers)
from ui.frames import frame_index, frame_text
from ui.models import dataset_of, is_bundled, load_model
from ui.pictures import PIXELS, Drawing, drawing_of
from ui.run_pictures import finals_picture, frame_picture, panel
from ui.state import (
    MIB,
    STORE,
    Outcome,
    SessionRuns,
    Which,
    computing,
    keep_branch,
    keep_run,
    last_outcome,
    session_of,
    session_runs,
    show,
    stored_run,
)

STREAM_FRAMES = 40  # at most this many pictures are streamed while a run computes
EXACT_NOTE = """**Why learn p<sub>θ</sub> at all?** The `exact-*` models are the optimal denoiser E[x₀ | x<sub>t</sub>]
of a finite training set, run through the same sampler on the same noise: the exact reverse of that set can only copy
its examples (nearest distance ≈ 0 beside the final samples), while a network trained on the data makes new ones."""
INTRO = """### Run a real model backwards, then step through every frame
Each frame shows, for the whole batch, the state x<sub>t</sub> entering the step, the model's prediction in all four
spaces (x̂₀, ε̂, v̂ and the flow velocity û = ε̂ − x̂₀; the one the model predicts says *predicted*, the others say what
they were converted *from*), the mean μ of the step and the noise z it adds: x<sub>t−1</sub> = μ + σ z. Scrubbing
frames never calls the model, nor the server: the page holds the frames. t is the paper's step, 1..T. Keyboard: ← and
→ step through frames. **Branch** reruns the run from the frame shown with the settings above (steps = the branch's
total, its first frames kept) on the same noise, and keeps it beside the run: choose which one to step through."""
CLIPPING_NOTE = """**Clipping x̂₀** (the clip control's *model default*, and always with sampler `scheduler`): the
checkpoint's scheduler config decides (`clip_sample`, `clip_sample_range`); where the config has no such key, diffusers'
default for that scheduler class applies, as in diffusers itself: DDPM and DDIM clip to [−1, 1], PNDM, Euler, Heun,
LMS, DPM-Solver, UniPC and DEIS never clip. The step, the frame's clipped view and its clipped share all follow that
one rule."""
STOPPED = "**Stopped.** That run was not kept; the frames, ◀ ▶ and Play browse this session's last finished run."
FINISHED = "**Nothing to stop:** the run had already finished and is kept; ◀ ▶ and Play browse it."


def _frame_slider(compact: CompactTrajectory, index: int) -> gr.Slider:
    return gr.Slider(minimum=1, maximum=len(compact), value=frame_of(index), step=1, interactive=True)


def _streamed(step: Step, prediction: Prediction, done: int, total: int, drawing: Drawing = PIXELS) -> tuple:
    views = [
        (view.title_for(prediction), panel(getattr(step, view.name), view.half_range, drawing)) for view in STEP_VIEWS
    ]
    status = f"computing step {done} of {total} (t = {paper_t(step.timestep)})"
    picture = with_caption(labelled_row(views), f"computing: {status}")
    return picture, status, gr.skip(), gr.skip(), gr.skip()


def diagnostics_of(runs: SessionRuns):
    """The diagnostics figure of a session's run, with its branch beside it when there is one."""
    run = runs.run.compact
    numbers = run_diagnostics(run, run.settings.schedule)
    if runs.branch is None:
        return diagnostics_figure(numbers)
    branch = runs.branch.compact
    label = f"branch from frame {frame_of(runs.branch_from)}"
    return diagnostics_figure(numbers, branch=(run_diagnostics(branch, branch.settings.schedule), label))


def _finish(
    compact: CompactTrajectory,
    values: RunValues,
    request: gr.Request | None,
    branch_from: int | None = None,
):
    """Keep the run made with the Run controls `values` (or, from `branch_from`, the branch beside it) for this
    session; show its last frame, the diagnostics and the final samples."""
    model = values.ref
    if branch_from is None:
        keep_run(request, compact, model, values)
    else:
        keep_branch(request, compact, model, branch_from, values)
    drawing = drawing_of(model)
    last = len(compact) - 1
    figure = diagnostics_of(session_runs(request))
    return (
        frame_picture(compact, last, drawing),
        frame_text(compact, last),
        _frame_slider(compact, last),
        figure,
        finals_picture(compact.samples, dataset_of(model), drawing),
    )


# --- handlers ---------------------------------------------------------------------------------


@on_gpu(duration=zero_gpu_seconds)
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
    drawing = drawing_of(values.ref)
    recorder = CompactRecorder(denoiser.name, denoiser.prediction, settings)
    total = settings.num_inference_steps
    every = max(1, total // STREAM_FRAMES)
    with computing(request):
        if (note := long_run_note(denoiser, settings)) is not None:
            yield gr.skip(), note, gr.skip(), gr.skip(), gr.skip()
        estimate, start = run_seconds(denoiser, settings), time.perf_counter()
        with torch.no_grad():
            for record in iterate(denoiser, settings):
                recorder.add(record)
                progress((recorder.count, total), desc="sampling", unit="steps")
                if recorder.count % every == 0 and recorder.count < total:
                    yield _streamed(record, denoiser.prediction, recorder.count, total, drawing)
        record_run_time(denoiser, settings, time.perf_counter() - start, estimate)
        yield _finish(recorder.finish(), values, request)


def branch_steps(run: SamplerSettings, index: int, steps: Any) -> int | None:
    """The remaining steps of a branch from run position `index` when the steps control says `steps` (the branch's
    total: it keeps the run's first `index` steps); None keeps the run's own remaining timesteps."""
    if steps is None:
        return None
    start = run.timesteps[index]  # 0-based: start + 1 timesteps are left, down to 0
    total = check_int(
        f"steps (a branch from frame {frame_of(index)} keeps {index} of the run's)",
        steps,
        index + 1,
        min(index + start + 1, MAX_STEPS),
    )
    return None if total == run.num_inference_steps else total - index


def branch_sentence(run: SamplerSettings, branch: SamplerSettings, index: int) -> str:
    """Which settings of a branch from run position `index` differ from the run's, in one sentence."""

    def schedule_name(settings: SamplerSettings) -> str:
        schedule = settings.schedule
        return f"{schedule.name}, T = {schedule.num_train_timesteps}"

    pairs = [
        ("sampler", branch.sampler.value, run.sampler.value),
        ("η", f"{branch.eta:g}", f"{run.eta:g}"),
        ("variance", branch.variance.value, run.variance.value),
        ("clipping of x̂₀", "on" if branch.clip_sample else "off", "on" if run.clip_sample else "off"),
        ("schedule", schedule_name(branch), schedule_name(run)),
    ]
    same_schedule = np.array_equal(branch.schedule.alphas_cumprod, run.schedule.alphas_cumprod)
    parts = [
        f"{name} {new} (run: {old})"
        for name, new, old in pairs
        if new != old or (name == "schedule" and not same_schedule)
    ]
    left, run_left = branch.num_inference_steps - index, run.num_inference_steps - index
    if branch.timesteps[index:] != run.timesteps[index:]:
        parts.append(f"{left} remaining steps (run: {run_left})")
    head = f"Branch from frame {frame_of(index)}"
    if not parts:
        return f"{head}: the run's own settings on the same noise (it retraces the run)."
    return f"{head}: " + ", ".join(parts) + "; the same noise."


@on_gpu
@user_errors
def branch(
    frame: float,
    step: StepValues,
    schedule: ScheduleValues,
    steps: float | None = None,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (how Gradio finds the progress bar)
):
    """Rerun the stored run from this frame with the step settings and `steps` (the branch's total; None: the
    run's) on the same noise stream; the branch is kept beside the run, which stays."""
    stored = session_runs(request).run
    compact = stored.compact
    index = frame_index(compact, frame)
    values = stored.values if stored.values is not None else RunValues(model=stored.model)
    denoiser = bind_model(load_model(stored.model), values)  # the run's prompt, class label and latent size
    remaining = branch_steps(compact.settings, index, steps)
    settings = branch_settings(compact.settings, denoiser, index, remaining_steps=remaining, **step.parse(schedule))
    size = (settings.num_inference_steps, settings.batch_size, denoiser.sample_shape, is_guided(denoiser))
    needs = compact.nbytes + compact_nbytes(*size)
    if needs > STORE.max_bytes_per_session:
        raise ValueError(
            f"run and branch together would keep {needs / MIB:.1f} MiB but a session may keep at most "
            f"{STORE.max_bytes_per_session / MIB:.0f} MiB: use fewer steps"
        )
    recorder = CompactRecorder.continuing(compact, index, settings)  # compact as it goes, like a run
    total = settings.num_inference_steps
    with computing(request):
        yield gr.skip(), f"branching from frame {frame_of(index)}…", gr.skip(), gr.skip(), gr.skip()
        with torch.no_grad():
            for record in iterate_branch(denoiser, settings, compact.x_t[index], index):
                recorder.add(record)
                progress((recorder.count, total), desc="branch", unit="steps")
        yield _finish(recorder.finish(), values, request, branch_from=index)


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
    picture = frame_picture(compact, index, drawing_of(values.ref))
    yield picture, frame_text(compact, index), _frame_slider(compact, index), gr.skip(), gr.skip()


@user_errors
def show_frame(frame: float, request: gr.Request = None):
    """Frame `frame` (1..number of steps) of this session's run: picture and diagnostics; no model call."""
    stored = stored_run(request)
    compact = stored.compact
    index = frame_index(compact, frame)
    return frame_picture(compact, index, drawing_of(stored.model)), frame_text(compact, index)


@user_errors
def step_frame(frame: float, delta: float, request: gr.Request = None):
    """Move `delta` frames (clamped to the run) and show that frame; returns the new frame number too."""
    stored = stored_run(request)
    compact = stored.compact
    current = frame_index(compact, frame)
    move = check_int("step", delta, -MAX_STEPS, MAX_STEPS)
    index = min(max(current + move, 0), len(compact) - 1)
    return frame_of(index), frame_picture(compact, index, drawing_of(stored.model)), frame_text(compact, index)


def previous_frame(frame: float, request: gr.Request = None):
    """The frame before `frame` (the first stays): its number, picture and diagnostics."""
    return step_frame(frame, -1, request=request)


def next_frame(frame: float, request: gr.Request = None):
    """The frame after `frame` (the last stays): its number, picture and diagnostics."""
    return step_frame(frame, 1, request=request)


DECODED_CACHE = 32  # decoded frames kept (per run key, frame and decoder): stepping back and forth decodes once
_decoded: dict[tuple[str, int, str], Image.Image] = {}


@on_gpu
@user_errors
def decode_frame(frame: float, decoder: str, request: gr.Request = None) -> Image.Image:
    """x_t and x̂₀ of the frame shown, decoded by `decoder` (the model's own VAE/VQ decoder, TAESD from the local
    cache, the linear projection or the raw channels) at the decoded size; cached."""
    kind = check_choice("decoder", decoder, Decoder)
    stored = stored_run(request)
    index = frame_index(stored.compact, frame)
    drawing = drawing_of(stored.model, kind)
    if not drawing.latent:
        raise ValueError("this run is in pixel space: its frames are the pictures themselves (decoder: latent models)")
    key = (stored.key, index, kind.value)
    with admission.working(request):  # the decode holds its client's slot even when its event is cancelled
        if key not in _decoded:
            views = [
                (f"{v.symbol} · {drawing.name}", panel(stored.compact.view(v.name, index), 1.0, drawing))
                for v in (X_T, X0)
            ]
            if len(_decoded) >= DECODED_CACHE:
                _decoded.pop(next(iter(_decoded)))
            _decoded[key] = with_caption(
                labelled_row(views), frame_caption(stored.compact, index) + f" · drawn by {drawing.name}"
            )
    return _decoded[key]


def stopped(request: gr.Request = None) -> str:
    """What the status line says after Stop: the run in progress was stopped and not kept (and what stepping now
    shows), or there was none: the last run had finished and is kept."""
    if STORE.get(session_of(request)) is None:
        return "**Stopped.** That run was not kept, and this session has no finished run: press **Run**."
    return FINISHED if last_outcome(request) is Outcome.KEPT else STOPPED


def _start(runs: SessionRuns, frame: Any) -> int:
    """The position to show of the current run: the slider's frame (a frame number of this run or of a longer one
    before it: then this run's last); anything that is not a frame number is refused by name."""
    number = check_int("frame", frame, 1, MAX_STEPS)
    return min(position_of(number), len(runs.compact) - 1)


def _run_choice(runs: SessionRuns) -> gr.Radio:
    choices = [("run", Which.RUN.value)]
    if runs.branch is not None:
        choices.append((f"branch from frame {frame_of(runs.branch_from)}", Which.BRANCH.value))
    return gr.Radio(choices=choices, value=runs.shown.value)


def _branch_note(runs: SessionRuns) -> str:
    if runs.branch is None:
        return ""
    return branch_sentence(runs.run.compact.settings, runs.branch.compact.settings, runs.branch_from)


@user_errors
def frames_after(frame: float, request: gr.Request = None) -> tuple:
    """After a run, a branch, Stop or a talk link: the page's frames of this session's current run (from the frame
    on the slider), the run/branch selector and the branch's sentence; nothing without a run."""
    runs = STORE.get(session_of(request))
    if runs is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    start = _start(runs, frame)
    return (
        frames.payload(runs.current, start, which=runs.shown.value),
        gr.Slider(maximum=len(runs.compact), value=frame_of(start)),
        _run_choice(runs),
        _branch_note(runs),
    )


@user_errors
def choose(which: str, frame: float, request: gr.Request = None) -> tuple:
    """Step through the run or its branch (the selector); stays on the same frame number when it exists."""
    check_int("frame", frame, 1, MAX_STEPS)  # before anything changes
    runs = show(request, check_choice("run choice", which, Which))
    start = _start(runs, frame)
    return frames.payload(runs.current, start, which=runs.shown.value), gr.Slider(
        maximum=len(runs.compact), value=frame_of(start)
    )


# --- layout -----------------------------------------------------------------------------------

JS_ONLY: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden", "queue": False}


def _js(call: str) -> str:
    """A js-only event body calling the page's frame player (ui.frames.PLAYER_JS) when it exists."""
    return f"(...args) => {{ const F = window.explorerFrames; if (F) {{ {call}; }} return []; }}"


@dataclass(frozen=True)
class SamplingTab:
    """What the app needs from the Reverse sampling view: its controls, and the page-load event's parts."""

    controls: RunControls
    frame: gr.Slider  # the frame shown
    open_frame: Any  # the event function for a URL with frame=N
    open_inputs: set
    outputs: list
    then_frames: Any  # event → event: hand the page the frames of this session's run once `event` is over


def build(schedule: ScheduleControls, url_frame: gr.State) -> SamplingTab:
    """Lay out the view; `schedule` is schedule 1's group (a run may follow it), `url_frame` the frame= of the URL.

    `#frame` holds the picture: `#frame canvas` (the page's player, once a run finished) and `#frame_stream img`
    (the pictures streamed while a run computes).
    """
    gr.Markdown(INTRO, elem_classes="notes")  # behind the notes toggle in presentation mode (ui.stage)
    controls = RunControls()
    with gr.Row():
        run_button = gr.Button("Run", variant="primary", elem_id="run")
        stop_button = gr.Button("Stop", variant="stop", elem_id="stop")
        branch_button = gr.Button("Branch from this frame (settings above, same noise)", elem_id="branch")
    with gr.Row():
        run_choice = gr.Radio(
            [("run", Which.RUN.value)], value=Which.RUN.value, label="step through", elem_id="run_choice", scale=1
        )
        branch_note = gr.Markdown("", elem_id="branch_note")
    status = gr.Markdown("Press **Run**.", elem_id="frame_text")
    with gr.Column(elem_id="frame"):
        picture = gr.Image(
            label="frame", format="png", type="pil", interactive=False, show_label=False, elem_id="frame_stream"
        )
        player = gr.HTML(
            None,
            html_template=frames.PLAYER_HTML,
            css_template=frames.PLAYER_CSS,
            js_on_load=frames.PLAYER_JS,
            server_functions=[frames.fetch_frames],
            elem_id="frame_player",
        )
    with gr.Row():
        previous = gr.Button("◀ Previous", elem_id="prev_frame", size="sm")
        play = gr.Button("▶ Play", elem_id="play", size="sm")
        following = gr.Button("Next ▶", elem_id="next_frame", size="sm")
        fps = gr.Slider(0.5, 30, value=4, step=0.5, label="Play speed (frames per second)", elem_id="play_fps")
        frame = gr.Slider(1, 2, value=1, step=1, label="frame (step of the run)", elem_id="frame_slider", scale=4)
    sync = gr.Button("sync", elem_id="frame_sync", visible="hidden")
    with gr.Row():
        decoder = gr.Dropdown(
            [d.value for d in Decoder], value=Decoder.EXACT.value, label="decoder (latent models)", elem_id="decoder"
        )
        decode_button = gr.Button("Decode this frame", elem_id="decode_frame", size="sm")
    decoded = gr.Image(
        label="this frame's x_t and x̂₀, decoded", format="png", type="pil", interactive=False, elem_id="decoded"
    )
    diagnostics = gr.Plot(label="over the run", elem_id="diagnostics")
    with gr.Row():
        finals = gr.Image(label="final samples", format="png", type="pil", interactive=False, elem_id="finals")
    gr.Markdown(EXACT_NOTE, elem_classes="notes")
    gr.Markdown(CLIPPING_NOTE, elem_id="clipping_note", elem_classes="notes")
    export_controls(frame)

    decode_button.click(
        named(decode_frame, [frame, decoder]), [frame, decoder], decoded, api_name="decode_frame", **MODEL_WORK
    )
    outputs = [picture, status, frame, diagnostics, finals]
    frame_outputs = [player, frame, run_choice, branch_note]

    def then_frames(event):
        return event.then(frames_after, [frame], frame_outputs, api_visibility="private", show_progress="hidden")

    run_groups = (controls, controls.step, schedule)
    for button in (run_button, branch_button):
        button.click(None, None, None, js=_js("F.computing()"), **JS_ONLY)
    run_event = run_button.click(
        bind(run, *run_groups), event_inputs(*run_groups), outputs, api_name="run", **MODEL_WORK
    )
    then_frames(run_event)
    # Once a run has loaded the model, the model box names what loaded (family, prediction, scheduler, speed).
    model_box = [controls["model"], controls["typed"]]
    run_event.then(model_info, model_box, controls.info, api_visibility="private", show_progress="hidden")
    branch_groups = (One(frame), controls.step, schedule, One(controls["steps"]))
    branch_event = branch_button.click(
        bind(branch, *branch_groups), event_inputs(*branch_groups), outputs, api_name="branch", **MODEL_WORK
    )
    then_frames(branch_event)
    stop_button.click(None, None, None, js=_js(f"F.stopped({STOPPED!r}, {FINISHED!r})"), **JS_ONLY)
    stopping = then_frames(
        stop_button.click(stopped, None, [status], cancels=[run_event, branch_event], api_visibility="private")
    )
    # Said again once the page's frames are back: the cancelled run's last streamed line may land after the first.
    stopping.then(stopped, None, [status], api_visibility="private", show_progress="hidden")
    run_choice.input(choose, [run_choice, frame], [player, frame], api_visibility="private", show_progress="hidden")

    # Stepping happens in the page (the player); the server endpoints stay for API users, on buttons never shown.
    sync.click(
        None, None, [frame, status], js="() => window.explorerFrames.synced()", trigger_mode="always_last", **JS_ONLY
    )
    previous.click(None, None, None, js=_js("F.step(-1)"), trigger_mode="multiple", **JS_ONLY)
    following.click(None, None, None, js=_js("F.step(1)"), trigger_mode="multiple", **JS_ONLY)
    for trigger in (frame.input, frame.release):
        trigger(None, [frame], None, js=_js("F.showFrame(args[0])"), trigger_mode="always_last", **JS_ONLY)
    play.click(None, [fps], None, js=_js("F.play(args[0])"), **JS_ONLY)
    fps.input(None, [fps], None, js=_js("F.speed(args[0])"), trigger_mode="always_last", **JS_ONLY)
    # API-only routes (no trigger on the page), named by the frame slider's URL name.
    gr.on([], named(show_frame, [frame]), [frame], [picture, status], concurrency_limit=None, api_name="frame")
    for stepping in (previous_frame, next_frame):
        gr.on([], named(stepping, [frame]), [frame], [frame, picture, status], concurrency_limit=None)
    open_groups = (One(url_frame, "frame"), *run_groups)
    return SamplingTab(
        controls, frame, bind(open_frame, *open_groups), event_inputs(*open_groups), outputs, then_frames
    )
