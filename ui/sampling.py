"""Reverse sampling view: run a model with streamed frames, then step through every frame without the model."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from explorer.diffusion import sampler as sampling
from explorer.diffusion.schedules import TimestepSpacing
from explorer.figures.images import export_gif, export_mp4, image_grid, labelled_row, scatter_frame
from explorer.figures.sampling import diagnostics_figure, run_diagnostics
from explorer.validation import check_choice, check_float, check_int, check_seed
from ui.common import MODEL_WORK, on_gpu, running_on_space, slider_events, user_errors
from ui.models import DEFAULT_MODEL, bundled_models, load_model
from ui.schedules import parse_schedule
from ui.state import SessionStore, StoredRun

STORE = SessionStore()
MAX_STEPS = 1000
MAX_IMAGE_BATCH = 64
MAX_POINT_BATCH = 1024
STREAM_FRAMES = 40  # at most this many pictures are streamed while a run computes
EXPORT_FRAMES = 120
PANEL_PIXELS = 200
VIEWS = (  # (view name in the compact trajectory, title, display half-range)
    ("x_t", "x_t", 1.0),
    ("x0", "x̂₀", 1.0),
    ("eps", "ε̂ (±3)", 3.0),
    ("v", "v̂ (±3)", 3.0),
    ("mean", "μ", 1.0),
    ("noise", "noise z (±3)", 3.0),
)
INTRO = """### Run a real model backwards, then step through every frame
Each frame shows, for the whole batch, the state x<sub>t</sub> entering the step, the model's prediction in all three
spaces (x̂₀, ε̂, v̂), the mean μ of the step and the noise z it adds: x<sub>t−1</sub> = μ + σ z. Scrubbing frames never
calls the model. t is the paper's step, 1..T. Keyboard: ← and → step through frames."""


class Toggle(StrEnum):
    """A setting that defaults to the checkpoint's own value."""

    MODEL = "model default"
    ON = "on"
    OFF = "off"


class VarianceChoice(StrEnum):
    MODEL = "model default"
    FIXED_SMALL = "fixed_small"
    FIXED_LARGE = "fixed_large"


class ScheduleChoice(StrEnum):
    MODEL = "the model's own"
    SCHEDULE_1 = "schedule 1 (Schedules tab)"


@dataclass(frozen=True)
class RunOptions:
    """Validated keyword arguments for `explorer.diffusion.sampler.sample` and `branch`."""

    sampler: str
    num_inference_steps: int
    eta: float
    variance: str | None
    clip_sample: bool | None
    schedule: Any  # Schedule | None
    spacing: str
    seed: int
    batch_size: int


def model_choices() -> list[str]:
    """Bundled checkpoints first (the default is one of them), then the Hub catalogue."""
    names = bundled_models()
    try:
        from explorer.models.catalogue import catalogue

        names += [entry.name for entry in catalogue() if entry.name not in names]
    except Exception:  # the catalogue is optional: the bundled list alone still works offline
        pass
    return names or [DEFAULT_MODEL]


def resolve_model(choice: str, typed: str) -> Any:
    """The typed repo id (or local folder, locally) when given, else the chosen catalogue entry."""
    ref = (typed or "").strip() or choice
    if not isinstance(ref, str) or not ref:
        raise ValueError("model must be a catalogue name or a Hub repo id such as owner/name")
    return load_model(ref, allow_local=not running_on_space())


@dataclass(frozen=True)
class StepSettings:
    """Validated settings a branch may change: None means the checkpoint's own (or the stored run's)."""

    sampler: str
    eta: float
    variance: str | None
    clip_sample: bool | None
    schedule: Any  # Schedule | None


def parse_step_settings(
    sampler: str, eta: float, variance: str, clip: str, schedule_choice: str, schedule_controls: tuple
) -> StepSettings:
    """Check the controls a run and a branch share. The schedule controls are checked even when unused."""
    kind = check_choice("sampler", sampler, sampling.SamplerKind)
    which = check_choice("sampling schedule", schedule_choice, ScheduleChoice)
    schedule = parse_schedule(1, *schedule_controls)
    variance_choice = check_choice("variance", variance, VarianceChoice)
    clipping = check_choice("clipping", clip, Toggle)
    return StepSettings(
        sampler=kind.value,
        eta=check_float("η", eta, 0, 1),
        variance=None if variance_choice is VarianceChoice.MODEL else variance_choice.value,
        clip_sample=None if clipping is Toggle.MODEL else clipping is Toggle.ON,
        schedule=schedule if which is ScheduleChoice.SCHEDULE_1 else None,
    )


def parse_run(
    model: str,
    typed: str,
    sampler: str,
    steps: float,
    eta: float,
    variance: str,
    clip: str,
    schedule_choice: str,
    *rest: Any,
) -> tuple[Any, RunOptions]:
    """The model and the checked options of a run, from the Run controls in `run`'s order.

    `rest` is schedule 1's six controls, then spacing, seed and batch. The schedule's T bounds the step count.
    """
    *schedule_controls, spacing, seed, batch = rest
    denoiser = resolve_model(model, typed)
    shared = parse_step_settings(sampler, eta, variance, clip, schedule_choice, schedule_controls)
    T_max = (shared.schedule or denoiser.schedule).num_train_timesteps
    is_image = len(denoiser.sample_shape) == 3
    options = RunOptions(
        num_inference_steps=check_int("steps", steps, 1, min(T_max, MAX_STEPS)),
        spacing=check_choice("spacing", spacing, TimestepSpacing).value,
        seed=check_seed(seed),
        batch_size=check_int("batch", batch, 1, MAX_IMAGE_BATCH if is_image else MAX_POINT_BATCH),
        **vars(shared),
    )
    return denoiser, options


# --- pictures of one frame --------------------------------------------------------------------


def _panel(batch: torch.Tensor, half_range: float) -> Image.Image:
    """One view of the whole batch: an image grid, or a scatter of points."""
    if batch.ndim == 2:  # points [B, 2]
        return scatter_frame(batch, size=PANEL_PIXELS, extent=3.5 * half_range)
    count, _, height, _ = batch.shape
    columns = math.ceil(math.sqrt(count))
    scale = max(1, PANEL_PIXELS // (columns * (height + 2)))
    return image_grid(batch / half_range, columns=columns, scale=scale)


def frame_picture(compact: Any, index: int) -> Image.Image:
    """Frame `index` of a compact run: every view of the whole batch, side by side with titles."""
    return labelled_row([(title, _panel(compact.view(name, index), scale)) for name, title, scale in VIEWS])


def frame_text(compact: Any, index: int) -> str:
    """Per-frame diagnostics in one Markdown line."""
    t, s = int(compact.timesteps[index]) + 1, int(compact.prev_timesteps[index]) + 1
    x_t, eps, x0 = (compact.view(name, index) for name in ("x_t", "eps", "x0"))
    rms = float(x_t.flatten(1).pow(2).mean(dim=1).sqrt().mean())
    clipped = float(compact.clipped_fraction[index].mean())
    return (
        f"**Frame {index + 1} of {len(compact)}**: t = {t} → {s if s > 0 else '0 (data)'} · RMS of x<sub>t</sub> "
        f"{rms:.3f} · std of ε̂ {float(eps.flatten(1).std(dim=1).mean()):.3f} (≈ 1 is healthy) · x̂₀ in "
        f"[{float(x0.min()):.2f}, {float(x0.max()):.2f}] · clipped {100 * clipped:.1f}% "
        f"· σ {float(compact.std[index].mean()):.4f}"
    )


def forget_session(request: gr.Request) -> None:
    """Drop a closed tab's stored run at once (API clients never close: the store's time to live frees theirs)."""
    STORE.drop(_session(request))


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def stored_run(request: gr.Request | None) -> StoredRun:
    run = STORE.get(_session(request))
    if run is None:
        raise ValueError("there is no finished run in this session (runs are kept 30 minutes): press Run first")
    return run


# --- handlers ---------------------------------------------------------------------------------


@on_gpu
@user_errors
def run(
    model: str,
    typed: str,
    sampler: str,
    steps: float,
    eta: float,
    variance: str,
    clip: str,
    schedule_choice: str,
    family: str,
    T: float,
    beta_start: float,
    beta_end: float,
    offset: float,
    zero_snr: bool,
    spacing: str,
    seed: float,
    batch: float,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (how Gradio finds the progress bar)
):
    """Sample with streamed frames; at the end the run is kept for this session and the stepper shows it."""
    ref = (typed or "").strip() or model
    denoiser, options = parse_run(
        model, typed, sampler, steps, eta, variance, clip, schedule_choice,
        family, T, beta_start, beta_end, offset, zero_snr, spacing, seed, batch,
    )  # fmt: skip
    settings = sampling.resolve_settings(denoiser, **vars(options))
    total = settings.num_inference_steps
    recorded = []
    every = max(1, total // STREAM_FRAMES)
    with torch.no_grad():
        for step in sampling.iterate(denoiser, **vars(options)):
            recorded.append(step)
            progress((len(recorded), total), desc="sampling", unit="steps")
            if len(recorded) % every == 0 and len(recorded) < total:
                yield _streamed(step, len(recorded), total)
    trajectory = sampling.Trajectory(denoiser.name, denoiser.prediction, settings, tuple(recorded))
    yield _finish(trajectory, ref, request)


def _streamed(step: Any, done: int, total: int) -> tuple:
    views = [(title, _panel(getattr(step, name), scale)) for name, title, scale in VIEWS]
    status = f"computing step {done} of {total} (t = {step.timestep + 1})"
    return labelled_row(views), status, gr.skip(), gr.skip(), gr.skip()


def _finish(trajectory: Any, model_name: str, request: gr.Request | None) -> tuple:
    """Keep the run for this session; show its last frame, the diagnostics and the final samples."""
    compact = trajectory.compact()
    STORE.put(_session(request), StoredRun(compact, trajectory.settings, model_name, compact.nbytes), compact.nbytes)
    last = len(compact) - 1
    figure = diagnostics_figure(run_diagnostics(compact, trajectory.settings.schedule))
    finals = _panel(compact.samples, 1.0)
    slider = gr.Slider(minimum=1, maximum=len(compact), value=last + 1, step=1, interactive=True)
    return frame_picture(compact, last), frame_text(compact, last), slider, figure, finals


OWN_VIEW = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}  # the model's raw output among the views
STEP_VIEWS = ("x_t", "eps", "x0", "v", "mean", "noise", "x0_clipped", "x_prev")


def _trajectory_from(stored: StoredRun, until: int) -> Any:
    """A Trajectory holding steps 0..until of a compact run: what `sampler.branch` keeps and restarts from.

    The compact run keeps x_t in float32, so step `until` restarts from the recorded state itself (the sampler
    carries it in float64 on the CPU: an unchanged branch matches the run to ~1e-6); the other views stay fp16.
    """
    compact = stored.compact
    steps = []
    for k in range(until + 1):
        views = {name: compact.view(name, k) for name in STEP_VIEWS}
        std = compact.std[k].reshape(-1, *([1] * (views["x_t"].ndim - 1)))
        steps.append(
            sampling.Step(
                index=k,
                timestep=int(compact.timesteps[k]),
                prev_timestep=int(compact.prev_timesteps[k]),
                model_output=views[OWN_VIEW[compact.prediction.value]],
                std=std,
                **views,
            )
        )
    return sampling.Trajectory(stored.model, compact.prediction, stored.settings, tuple(steps))


@on_gpu
@user_errors
def branch(
    frame: float,
    sampler: str,
    eta: float,
    variance: str,
    clip: str,
    schedule_choice: str,
    family: str,
    T: float,
    beta_start: float,
    beta_end: float,
    offset: float,
    zero_snr: bool,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (how Gradio finds the progress bar)
):
    """Rerun the rest of the stored run from this frame with changed settings, on the same noise stream."""
    stored = stored_run(request)
    index = check_int("frame", frame, 1, len(stored.compact)) - 1
    denoiser = load_model(stored.model, allow_local=not running_on_space())
    shared = parse_step_settings(
        sampler, eta, variance, clip, schedule_choice, (family, T, beta_start, beta_end, offset, zero_snr)
    )
    changes = {name: value for name, value in vars(shared).items() if value is not None}
    base = _trajectory_from(stored, index)
    yield gr.skip(), f"branching from frame {index + 1}…", gr.skip(), gr.skip(), gr.skip()
    with torch.no_grad():
        trajectory = sampling.branch(
            base, denoiser, index, progress=lambda done, total: progress((done, total), desc="branch"), **changes
        )
    yield _finish(trajectory, stored.model, request)


@user_errors
def open_frame(target: int | None, *run_args: Any, request: gr.Request = None, progress: gr.Progress = gr.Progress()):  # noqa: B008
    """A talk's URL with frame=N: run with the restored controls (`run_args` as for `run`), then show frame N.

    N beyond the run shows its last frame. Without frame= in the URL (`target` None) nothing runs and nothing is
    shown, but the controls are still checked (which loads the chosen model into the shared cache once, so the
    first Run does not wait for it).
    """
    if target is None:
        parse_run(*run_args)  # every argument is checked, used or not
        yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return
    yield from run(*run_args, request=request, progress=progress)
    compact = stored_run(request).compact
    index = min(check_int("frame", target, 1, MAX_STEPS), len(compact)) - 1
    slider = gr.Slider(minimum=1, maximum=len(compact), value=index + 1, step=1, interactive=True)
    yield frame_picture(compact, index), frame_text(compact, index), slider, gr.skip(), gr.skip()


@user_errors
def show_frame(frame: float, request: gr.Request = None):
    """Frame `frame` (1..number of steps) of this session's run: picture and diagnostics; no model call."""
    compact = stored_run(request).compact
    index = check_int("frame", frame, 1, len(compact)) - 1
    return frame_picture(compact, index), frame_text(compact, index)


@user_errors
def step_frame(frame: float, delta: float, request: gr.Request = None):
    """Move `delta` frames (clamped to the run) and show that frame; returns the new frame number too."""
    compact = stored_run(request).compact
    current = check_int("frame", frame, 1, len(compact))
    move = check_int("step", delta, -MAX_STEPS, MAX_STEPS)
    new = min(max(current + move, 1), len(compact))
    return new, frame_picture(compact, new - 1), frame_text(compact, new - 1)


@user_errors
def export(request: gr.Request = None):
    """The run as a GIF and an MP4 (x_t and x̂₀ side by side, at most EXPORT_FRAMES frames)."""
    compact = stored_run(request).compact
    indices = np.unique(np.round(np.linspace(0, len(compact) - 1, min(EXPORT_FRAMES, len(compact)))).astype(int))
    frames = [
        labelled_row([("x_t", _panel(compact.view("x_t", k), 1.0)), ("x̂₀", _panel(compact.view("x0", k), 1.0))])
        for k in indices
    ]
    frames.append(labelled_row([("x_0", _panel(compact.samples, 1.0)), ("final", _panel(compact.samples, 1.0))]))
    folder = Path(tempfile.mkdtemp(prefix="explorer-export-"))
    return str(export_gif(frames, folder / "run.gif")), str(export_mp4(frames, folder / "run.mp4"))


@user_errors
def toggle_play(playing: bool):
    """Play/pause: start or stop the frame timer."""
    now = not bool(playing)
    return now, gr.Timer(active=now), gr.Button(value="⏸ Pause" if now else "▶ Play")


@user_errors
def tick(frame: float, request: gr.Request = None):
    """One timer tick while playing: the next frame, or stop at the last one."""
    compact = stored_run(request).compact
    current = check_int("frame", frame, 1, len(compact))
    if current >= len(compact):
        return current, gr.skip(), gr.skip(), False, gr.Timer(active=False), gr.Button(value="▶ Play")
    new = current + 1
    return new, frame_picture(compact, new - 1), frame_text(compact, new - 1), True, gr.skip(), gr.skip()


def build(schedule_inputs: list) -> dict:
    """Lay out the view; `schedule_inputs` are schedule 1's controls (a sampling schedule may differ)."""
    gr.Markdown(INTRO)
    choices = model_choices()
    with gr.Row():
        model = gr.Dropdown(
            choices,
            value=choices[0] if DEFAULT_MODEL not in choices else DEFAULT_MODEL,
            label="model (bundled ones run offline)",
            allow_custom_value=True,
            elem_id="model",
            scale=2,
        )
        typed = gr.Textbox(
            label="or a Hub repo id" + ("" if running_on_space() else " / local folder"),
            placeholder="google/ddpm-cifar10-32",
            elem_id="typed_model",
            scale=2,
        )
        sampler = gr.Radio([k.value for k in sampling.SamplerKind], value="ddpm", label="sampler")
        steps = gr.Slider(1, MAX_STEPS, value=50, step=1, label="steps", elem_id="steps")
        eta = gr.Slider(0, 1, value=0, step=0.05, label="η (DDIM)")
    with gr.Row():
        variance = gr.Dropdown([c.value for c in VarianceChoice], value=VarianceChoice.MODEL.value, label="variance")
        clip = gr.Dropdown([c.value for c in Toggle], value=Toggle.MODEL.value, label="clip x̂₀ to [−1, 1]")
        schedule_choice = gr.Dropdown(
            [c.value for c in ScheduleChoice], value=ScheduleChoice.MODEL.value, label="sampling schedule"
        )
        spacing = gr.Dropdown([s.value for s in TimestepSpacing], value="leading", label="spacing")
        seed = gr.Slider(0, 10_000, value=0, step=1, label="seed", elem_id="seed")
        batch = gr.Slider(1, MAX_IMAGE_BATCH, value=16, step=1, label="batch (2-D models: points)", elem_id="batch")
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
    with gr.Row():
        gif = gr.File(label="GIF")
        mp4 = gr.File(label="MP4")

    schedule_controls = list(schedule_inputs)
    outputs = [picture, status, frame, diagnostics, finals]
    run_inputs = [model, typed, sampler, steps, eta, variance, clip, schedule_choice]
    run_inputs += [*schedule_controls, spacing, seed, batch]
    run_event = run_button.click(
        run,
        run_inputs,
        outputs,
        api_name="run",
        **MODEL_WORK,
    )
    branch_event = branch_button.click(
        branch,
        [frame, sampler, eta, variance, clip, schedule_choice, *schedule_controls],
        outputs,
        api_name="branch",
        **MODEL_WORK,
    )
    stop_button.click(None, cancels=[run_event, branch_event], api_visibility="private")
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
    return {
        "model": model,
        "seed": seed,
        "frame": frame,
        "steps": steps,
        "batch": batch,
        "run_inputs": run_inputs,
        "outputs": outputs,
    }


KEYBOARD_JS = """
<script>
document.addEventListener('keydown', (event) => {
  const tag = (event.target.tagName || '').toLowerCase();
  if (tag === 'input' || tag === 'textarea' || event.target.isContentEditable) return;
  const id = event.key === 'ArrowLeft' ? 'prev_frame' : event.key === 'ArrowRight' ? 'next_frame' : null;
  const button = id && document.getElementById(id);
  if (button && button.offsetParent !== null) { event.preventDefault(); button.click(); }
});
</script>
"""
