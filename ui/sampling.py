"""Reverse sampling view: run a model with streamed frames, then step through every frame without the model.

The run lifecycle (checks, budget, binding, the run or branch itself) is `ui.runs`; the handlers here adapt its
typed results to the view's components through one output dataclass, `FrameView`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr
from PIL import Image

from explorer.diffusion.indexing import frame_of, paper_t, position_of
from explorer.diffusion.views import STEP_VIEWS, X0, X_T
from explorer.figures.images import labelled_row, with_caption
from explorer.figures.sampling import frame_caption
from explorer.models.decoders import Decoder
from explorer.validation import check_choice, check_int
from ui import admission, branches, frames, model_box, runs
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
    event_inputs,
)
from ui.estimate import zero_gpu_seconds
from ui.exports import export, export_controls, export_steps, frame_png  # noqa: F401 (export, export_steps: for callers)
from ui.frames import frame_index, frame_text
from ui.models import is_bundled
from ui.outputs import Outputs, Shown
from ui.pictures import PIXELS, Drawing, drawing_of
from ui.run_pictures import frame_picture, panel
from ui.runs import RunResult, Said, Streamed
from ui.state import STORE, Kept, Outcome, SessionRuns, Which, last_outcome, session_of, session_runs, show, stored_run

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
BRANCH_LABEL = "Branch from this frame (settings above, same noise)"
PIXEL_RUN = "not for this run: its frames are in pixel space, the pictures themselves"
STOPPED = "**Stopped.** That run was not kept; the frames, ◀ ▶ and Play browse this session's last finished run."
FINISHED = "**Nothing to stop:** the run had already finished and is kept; ◀ ▶ and Play browse it."


@dataclass(frozen=True)
class FrameView(Shown):
    """What the view shows after an event; a field left None changes nothing.

    `frame` is the frame number on the slider (1..S) and `frames` the run's length S (its maximum); `player` the
    page's frames (`ui.frames.payload`); `choices` and `shown` the run/branch selector.
    """

    picture: Image.Image | None = None  # the picture while a run computes (and an API client's frame)
    status: str | None = None  # the line under the frame
    frame: int | None = None
    frames: int | None = None
    diagnostics: Any = None  # plotly Figure over the run
    finals: Image.Image | None = None
    player: dict[str, Any] | None = None
    choices: tuple[tuple[str, str], ...] | None = None
    shown: str | None = None
    branch_note: str | None = None
    branch_refusal: str | None = None  # why Branch cannot apply to this run ("": it can)
    latent: bool | None = None  # whether the run's frames are latents (the decoder applies)

    def updates(self) -> dict[str, Any]:
        updates = super().updates()
        for name in ("frames", "choices", "shown", "branch_refusal", "latent"):
            updates.pop(name, None)
        if self.branch_refusal is not None:
            label = f"Branch: not for this run ({self.branch_refusal})" if self.branch_refusal else BRANCH_LABEL
            updates["branch_button"] = gr.Button(value=label, interactive=not self.branch_refusal)
        if self.latent is not None:
            info = None if self.latent else PIXEL_RUN
            updates["decoder"] = gr.Dropdown(interactive=self.latent, info=info)
            updates["decode_button"] = gr.Button(interactive=self.latent)
        if self.frames is not None:
            updates["frame"] = gr.Slider(minimum=1, maximum=self.frames, value=self.frame, step=1, interactive=True)
        if self.choices is not None:
            updates["run_choice"] = gr.Radio(choices=list(self.choices), value=self.shown)
        return updates


def _progress(progress: gr.Progress | None, desc: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress((done, total), desc=desc, unit="steps")


def _streamed(item: Streamed, drawing: Drawing = PIXELS) -> FrameView:
    step = item.step
    views = [
        (view.title_for(item.prediction), panel(getattr(step, view.name), view.half_range, drawing))
        for view in STEP_VIEWS
    ]
    status = f"computing step {item.done} of {item.total} (t = {paper_t(step.timestep)})"
    return FrameView(picture=with_caption(labelled_row(views), f"computing: {status}"), status=status)


def _finished(result: RunResult) -> FrameView:
    return FrameView(
        picture=result.picture,
        status=result.text,
        frame=frame_of(result.index),
        frames=result.frames,
        diagnostics=result.figure,
        finals=result.finals,
    )


def _shown(items: Iterator[Said | Streamed | RunResult], model: str) -> Iterator[FrameView]:
    """A run's (or branch's) progress and result as the view shows them. The drawing is chosen once the run has
    checked its controls (its first streamed step), never from an unchecked model value."""
    drawing = None
    for item in items:
        if isinstance(item, Said):
            yield FrameView(status=item.text)
        elif isinstance(item, Streamed):
            drawing = drawing or drawing_of(model)
            yield _streamed(item, drawing)
        else:
            yield _finished(item)


# --- handlers ---------------------------------------------------------------------------------


@on_gpu(duration=zero_gpu_seconds)
@user_errors
def run(
    values: RunValues,
    step: StepValues,
    schedule: ScheduleValues,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (how Gradio finds the progress bar)
) -> Iterator[FrameView]:
    """Sample with streamed frames, recording compactly as it goes; at the end the run is kept for this session."""
    yield from _shown(runs.run(values, step, schedule, request, _progress(progress, "sampling")), values.ref)


@on_gpu
@user_errors
def branch(
    frame: float,
    step: StepValues,
    schedule: ScheduleValues,
    steps: float | None = None,
    guidance: float | None = None,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (how Gradio finds the progress bar)
) -> Iterator[FrameView]:
    """Rerun the stored run from this frame with the step settings, `steps` (the branch's total; None: the run's)
    and `guidance` (a conditional model's scale; None: the run's) on the same noise stream; the branch is kept
    beside the run, which stays."""
    model = session_runs(request).run.model
    branching = branches.branch(frame, step, schedule, steps, request, _progress(progress, "branch"), guidance)
    yield from _shown(branching, model)


@user_errors
def open_frame(
    target: int | None,
    values: RunValues,
    step: StepValues,
    schedule: ScheduleValues,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> Iterator[FrameView]:
    """A talk's URL with frame=N: run a bundled model with the restored controls, then show frame N (beyond the
    run: its last). A Hub model named in a link is shown and runs only when the visitor presses Run. Opening the
    page never loads or downloads anything: without frame= the controls are only checked.
    """
    runs.check_controls(values, step, schedule)
    if target is None:
        yield FrameView()
        return
    if not is_bundled(values.ref):
        yield FrameView(status=f"This link names the Hub model `{values.ref}`: press **Run** to download and run it.")
        return
    yield from run(values, step, schedule, request=request, progress=progress)
    compact = stored_run(request).compact
    index = min(position_of(check_int("frame", target, 1, MAX_STEPS)), len(compact) - 1)
    picture = frame_picture(compact, index, drawing_of(values.ref))
    yield FrameView(picture=picture, status=frame_text(compact, index), frame=frame_of(index), frames=len(compact))


@user_errors
def show_frame(frame: float, request: gr.Request = None) -> FrameView:
    """Frame `frame` (1..number of steps) of this session's run: picture and diagnostics; no model call."""
    stored = stored_run(request)
    compact = stored.compact
    index = frame_index(compact, frame)
    return FrameView(picture=frame_picture(compact, index, drawing_of(stored.model)), status=frame_text(compact, index))


@user_errors
def step_frame(frame: float, delta: float, request: gr.Request = None) -> FrameView:
    """Move `delta` frames (clamped to the run) and show that frame: its number, picture and diagnostics."""
    stored = stored_run(request)
    compact = stored.compact
    current = frame_index(compact, frame)
    move = check_int("step", delta, -MAX_STEPS, MAX_STEPS)
    index = min(max(current + move, 0), len(compact) - 1)
    picture = frame_picture(compact, index, drawing_of(stored.model))
    return FrameView(picture=picture, status=frame_text(compact, index), frame=frame_of(index))


def previous_frame(frame: float, request: gr.Request = None) -> FrameView:
    """The frame before `frame` (the first stays): its number, picture and diagnostics."""
    return step_frame(frame, -1, request=request)


def next_frame(frame: float, request: gr.Request = None) -> FrameView:
    """The frame after `frame` (the last stays): its number, picture and diagnostics."""
    return step_frame(frame, 1, request=request)


DECODED_CACHE = 32  # decoded frames kept (per run key, frame and decoder): stepping back and forth decodes once
_decoded: Kept[tuple[str, int, str], Image.Image] = Kept(DECODED_CACHE)  # shared by sessions, locked


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

    def decoded() -> Image.Image:
        views = [
            (f"{v.symbol} · {drawing.name}", panel(stored.compact.view(v.name, index), 1.0, drawing)) for v in (X_T, X0)
        ]
        caption = frame_caption(stored.compact, index) + f" · drawn by {drawing.name}"
        return with_caption(labelled_row(views), caption)

    with admission.working(request):  # the decode holds its client's slot even when its event is cancelled
        return _decoded.get((stored.key, index, kind.value), decoded)


def stopped(request: gr.Request = None) -> str:
    """What the status line says after Stop: the run in progress was stopped and not kept (and what stepping now
    shows), or there was none: the last run had finished and is kept."""
    if STORE.get(session_of(request)) is None:
        return "**Stopped.** That run was not kept, and this session has no finished run: press **Run**."
    return FINISHED if last_outcome(request) is Outcome.KEPT else STOPPED


def _start(session: SessionRuns, frame: Any) -> int:
    """The position to show of the current run: the slider's frame (a frame number of this run or of a longer one
    before it: then this run's last); anything that is not a frame number is refused by name."""
    number = check_int("frame", frame, 1, MAX_STEPS)
    return min(position_of(number), len(session.compact) - 1)


def _player(session: SessionRuns, start: int) -> FrameView:
    """The page's frames of the session's shown run from position `start`, and the slider on it."""
    payload = frames.payload(session.current, start, which=session.shown.value)
    return FrameView(player=frames.page_value(payload), frame=frame_of(start), frames=len(session.compact))


@user_errors
def frames_after(frame: float, request: gr.Request = None) -> FrameView:
    """After a run, a branch, Stop or a talk link: the page's frames of this session's current run (from the frame
    on the slider), the run/branch selector and the branch's sentence; nothing without a run."""
    session = STORE.get(session_of(request))
    if session is None:
        return FrameView()
    choices = [("run", Which.RUN.value)]
    if session.branch is not None:
        choices.append((f"branch from frame {frame_of(session.branch_from)}", Which.BRANCH.value))
    return replace(
        _player(session, _start(session, frame)),
        choices=tuple(choices),
        shown=session.shown.value,
        branch_note=branches.branch_note(session),
        branch_refusal=branches.branch_refusal(session) or "",
        latent=drawing_of(session.run.model).latent,
    )


@user_errors
def choose(which: str, frame: float, request: gr.Request = None) -> FrameView:
    """Step through the run or its branch (the selector); stays on the same frame number when it exists."""
    check_int("frame", frame, 1, MAX_STEPS)  # before anything changes
    session = show(request, check_choice("run choice", which, Which))
    return _player(session, _start(session, frame))


# --- layout -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingTab:
    """What the app needs from the Reverse sampling view: its controls, and the page-load event's parts."""

    controls: RunControls
    frame: gr.Slider  # the frame shown
    open_frame: Any  # the event function for a URL with frame=N
    open_inputs: list
    outputs: list
    then_frames: Any  # event → event: hand the page the frames of this session's run once `event` is over
    model_box: model_box.ModelBoxView  # the model line; `.after(event)` refreshes it (a link that names a model)


def _decoder(frame: gr.Slider) -> tuple[gr.Dropdown, gr.Button, gr.Image]:
    """The decoder row and the decoded panel, laid out where called, wired to decode the frame on `frame`."""
    with gr.Row():
        decoder = gr.Dropdown(
            [d.value for d in Decoder], value=Decoder.EXACT.value, label="decoder (latent models)", elem_id="decoder"
        )
        decode_button = gr.Button("Decode this frame", elem_id="decode_frame", size="sm")
    decoded = gr.Image(
        label="this frame's x_t and x̂₀, decoded", format="png", type="pil", interactive=False, elem_id="decoded"
    )
    decoding = decode_button.click(
        named(decode_frame, [frame, decoder]),
        [frame, decoder],
        decoded,
        js=frames.ON_PLAYER["decoding"],  # the player notes the frame decoded; the panel clears once it moves on
        api_name="decode_frame",
        **MODEL_WORK,
    )
    decoding.then(None, None, [decoded], js=frames.ON_PLAYER["decoded"], **frames.JS_ONLY)
    return decoder, decode_button, decoded


def _api_routes(frame: gr.Slider, picture: gr.Image, status: gr.Markdown) -> None:
    """Frame stepping for API users (the page steps in the browser): /frame, /previous_frame and /next_frame."""
    one_frame = Outputs(picture=picture, status=status)
    gr.on(
        [],
        named(one_frame.adapt(show_frame), [frame]),
        [frame],
        one_frame.list,
        concurrency_limit=None,
        api_name="frame",
    )
    stepped = Outputs(frame=frame, picture=picture, status=status)
    for stepping in (previous_frame, next_frame):
        gr.on([], named(stepped.adapt(stepping), [frame]), [frame], stepped.list, concurrency_limit=None)


def build(schedule: ScheduleControls, url_frame: gr.State) -> SamplingTab:
    """Lay out the view; `schedule` is schedule 1's group (a run may follow it), `url_frame` the frame= of the URL.

    `#frame` holds the picture: `#frame canvas` (the page's player, once a run finished) and `#frame_stream img`
    (the pictures streamed while a run computes).
    """
    gr.Markdown(INTRO, elem_classes="notes")  # behind the notes toggle in presentation mode (ui.stage)
    controls = RunControls()
    box = model_box.build(controls)
    info = box.info
    with gr.Row():
        run_button = gr.Button("Run", variant="primary", elem_id="run")
        stop_button = gr.Button("Stop", variant="stop", elem_id="stop")
        branch_button = gr.Button(BRANCH_LABEL, elem_id="branch")
    with gr.Row():
        run_choice = gr.Radio(
            [("run", Which.RUN.value)], value=Which.RUN.value, label="step through", elem_id="run_choice", scale=1
        )
        branch_note = gr.Markdown("", elem_id="branch_note")
    status = gr.Markdown("Press **Run**.", elem_id="frame_text")
    stage = frames.FrameStage.build(stopped=STOPPED, finished=FINISHED)
    picture, player, frame = stage.picture, stage.player, stage.frame
    decoder, decode_button, decoded = _decoder(frame)
    diagnostics = gr.Plot(label="over the run", elem_id="diagnostics")
    with gr.Row():
        finals = gr.Image(label="final samples", format="png", type="pil", interactive=False, elem_id="finals")
    gr.Markdown(EXACT_NOTE, elem_classes="notes")
    gr.Markdown(CLIPPING_NOTE, elem_id="clipping_note", elem_classes="notes")
    export_controls(frame)

    shown = Outputs(picture=picture, status=status, frame=frame, diagnostics=diagnostics, finals=finals)
    to_player = Outputs(
        player=player,
        frame=frame,
        run_choice=run_choice,
        branch_note=branch_note,
        branch_button=branch_button,
        decoder=decoder,
        decode_button=decode_button,
    )

    def then_frames(event):
        after = to_player.adapt(frames_after)
        return event.then(after, [frame], to_player.list, api_visibility="private", show_progress="hidden")

    run_groups = (controls, controls.step, schedule)
    for button in (run_button, branch_button):
        button.click(None, None, None, js=frames.ON_PLAYER["computing"], **frames.JS_ONLY)
    # The progress bar shows on the status line alone: on every output it would redraw five components per step.
    run_event = run_button.click(
        bind(shown.adapt(run), *run_groups),
        event_inputs(*run_groups),
        shown.list,
        api_name="run",
        show_progress_on=[status],
        **MODEL_WORK,
    )
    then_frames(run_event)
    # Once a run has loaded the model, the model box names what loaded (family, prediction, scheduler, speed).
    model_names = [controls["model"], controls["typed"]]
    run_event.then(model_box.model_info, model_names, info, api_visibility="private", show_progress="hidden")
    branch_groups = (One(frame), controls.step, schedule, One(controls["steps"]), One(controls["guidance"]))
    branch_event = branch_button.click(
        bind(shown.adapt(branch), *branch_groups),
        event_inputs(*branch_groups),
        shown.list,
        api_name="branch",
        show_progress_on=[status],
        **MODEL_WORK,
    )
    then_frames(branch_event)
    stop_button.click(None, None, None, js=frames.ON_PLAYER["stopped"], **frames.JS_ONLY)
    stopping = then_frames(
        stop_button.click(stopped, None, [status], cancels=[run_event, branch_event], api_visibility="private")
    )
    # Said again once the page's frames are back: the cancelled run's last streamed line may land after the first.
    stopping.then(stopped, None, [status], api_visibility="private", show_progress="hidden")
    chosen = Outputs(player=player, frame=frame)
    run_choice.input(
        chosen.adapt(choose), [run_choice, frame], chosen.list, api_visibility="private", show_progress="hidden"
    )

    stage.wire(status, decoded)  # stepping happens in the page; the server routes below stay for API users
    _api_routes(frame, picture, status)
    open_groups = (One(url_frame, "frame"), *run_groups)
    open_event = bind(shown.adapt(open_frame), *open_groups)
    return SamplingTab(controls, frame, open_event, event_inputs(*open_groups), shown.list, then_frames, box)
