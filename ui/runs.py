"""The run lifecycle as one service, Gradio-free: check the controls, budget the record, bind the model, estimate,
run (or branch from a frame), keep the result for the session and return it typed.

    step                  function          refuses (ValueError naming the field)
    check                 check_controls    any control out of range, before anything loads
    bind                  bind_model        (binds a prompt, class label or latent size to a latent model)
    budget                estimate.check_fits (branches.branch_fits)  a record over the session's byte budget
    estimate              estimate.long_run_note              (says so when the run will be long)
    run / branch          run, branches.branch  a non-finite step (FloatingPointError, from the sampler)
    keep                  state.keep_run / keep_branch

`run` and `ui.branches.branch` are generators: `Said` (a status line) and `Streamed` (a step while it computes) on
the way, then one `RunResult`. A view adapts these to its components; nothing here knows of Gradio.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from explorer.diffusion.conditioning import Conditioning
from explorer.diffusion.denoiser import Denoiser
from explorer.diffusion.indexing import frame_of, position_of
from explorer.diffusion.parameterization import Prediction
from explorer.diffusion.sampler import iterate
from explorer.diffusion.schedules import TimestepSpacing
from explorer.diffusion.settings import SamplerSettings, max_batch_size, resolve_settings
from explorer.diffusion.trajectory import CompactRecorder, CompactTrajectory, Step
from explorer.figures.sampling import diagnostics_figure, frame_notes, run_diagnostics, step_label
from explorer.validation import check_choice, check_int, check_seed
from ui.estimate import check_fits, is_guided, long_run_note, record_run_time, run_seconds
from ui.models import check_ref, dataset_of, load_model
from ui.pictures import drawing_of
from ui.run_pictures import finals_picture, frame_picture
from ui.state import SessionRuns, StoredRun, computing, keep_branch, keep_run, session_runs
from ui.values import MAX_IMAGE_BATCH, MAX_POINT_BATCH, MAX_STEPS, RunValues, ScheduleValues, StepValues

STREAM_FRAMES = 40  # at most this many steps are streamed while a run computes
PROGRESS_TICKS = 25  # at most this many progress reports in a run: each refreshes every loading status on the page
Progress = Callable[[int, int], None]  # (steps done, steps in all)


# --- checks and binding ---------------------------------------------------------------------------------


@runtime_checkable
class Bindable(Protocol):
    """A model that takes a latent size and, when `conditional`, a prompt or class label (a latent model)."""

    conditional: bool

    def resized(self, height: int, width: int) -> Any: ...

    def condition(self, conditioning: Conditioning) -> Any: ...


def bind_model(denoiser: Denoiser, values: RunValues) -> Denoiser:
    """The model as a run uses it: a conditional model bound to the prompt or class label, a latent model at the
    latent size asked for. Models that take neither ignore those controls (they are hidden for them)."""
    conditioning, side = values.conditioning(), values.latent_side()
    if not isinstance(denoiser, Bindable):
        return denoiser
    if side is not None:
        denoiser = denoiser.resized(side, side)
    if denoiser.conditional:
        denoiser = denoiser.condition(conditioning)
    return denoiser


def check_controls(values: RunValues, step: StepValues, schedule: ScheduleValues) -> dict[str, Any]:
    """Every Run control that can be checked without the model, as sampler options (the model's T and sample
    shape bound steps and batch further in `parse_run`). Loads nothing."""
    options = step.parse(schedule)
    if not isinstance(values.ref, str) or not values.ref:
        raise ValueError("model must be a catalogue name or a Hub repo id such as owner/name")
    check_ref(values.ref)
    check_int("steps", values.steps, 1, MAX_STEPS)
    check_int("batch", values.batch, 1, MAX_POINT_BATCH)
    options["spacing"] = check_choice("spacing", values.spacing, TimestepSpacing)
    options["seed"] = check_seed(values.seed)
    values.conditioning(), values.latent_side()  # checked here too: nothing loads before a bad prompt is refused
    return options


def parse_run(values: RunValues, step: StepValues, schedule: ScheduleValues) -> tuple[Denoiser, SamplerSettings]:
    """The model and the checked settings of a run: every control checked here, once, before anything runs."""
    options = check_controls(values, step, schedule)
    denoiser = bind_model(load_model(values.ref), values)
    total = (options.get("schedule") or denoiser.schedule).num_train_timesteps
    steps = check_int("steps", values.steps, 1, min(total, MAX_STEPS))
    is_image = len(denoiser.sample_shape) == 3
    batch_limit = min(MAX_IMAGE_BATCH, max_batch_size(denoiser.sample_shape)) if is_image else MAX_POINT_BATCH
    batch = check_int("batch", values.batch, 1, batch_limit)
    check_fits(steps, batch, denoiser.sample_shape, is_guided(denoiser))
    return denoiser, resolve_settings(denoiser, num_inference_steps=steps, batch_size=batch, **options)


# --- what a run says on the way, and what it returns ----------------------------------------------------


@dataclass(frozen=True)
class Said:
    """A status line while a run computes (a long run's estimate, a branch starting)."""

    text: str


@dataclass(frozen=True)
class Streamed:
    """Step `done` of `total` (1-based count), recorded while the run computes."""

    step: Step
    done: int
    total: int
    prediction: Prediction  # what the model predicts (a view says whether it was predicted or converted)


@dataclass(frozen=True)
class RunResult:
    """A finished run or branch, kept for the session: the session's runs (this one shown), and what to show of it.

    `index` is the position shown (0-based: its last frame); `picture` and `text` are that frame's, `figure` the
    diagnostics over the run (its branch beside it), `finals` the final samples beside their nearest training
    examples.
    """

    runs: SessionRuns
    stored: StoredRun
    index: int
    picture: Image.Image
    text: str
    figure: Any  # plotly Figure
    finals: Image.Image

    @property
    def frames(self) -> int:
        return len(self.stored.compact)


def frame_index(compact: CompactTrajectory, frame: Any) -> int:
    """The run position of a frame number from the page (1..S, checked against the run's length)."""
    return position_of(check_int("frame", frame, 1, len(compact)))


def _text_line(numbers: dict[str, np.ndarray], sigma: np.ndarray, compact: CompactTrajectory, index: int) -> str:
    settings = compact.settings
    alphas = f"ᾱ {settings.alpha_of_call[index]:.4g} → {settings.alpha_of_landing[index]:.4g}"
    notes = "".join(f" ({note})" for note in frame_notes(settings, index))
    clip = f"clipped to [−{settings.clip_range:g}, {settings.clip_range:g}]"
    clipping = f"{clip}: {100 * numbers['clipped'][index]:.1f}%" if settings.clip_sample else "x̂₀ not clipped"
    return (
        f"**Frame {frame_of(index)} of {len(compact)}**: {step_label(settings, index)}{notes} · {alphas} · RMS of "
        f"x<sub>t</sub> {numbers['x_t_rms'][index]:.3f} · std of ε̂ {numbers['eps_std'][index]:.3f} (≈ 1 expected "
        f"at high t, where noise dominates) · x̂₀ in [{numbers['x0_min'][index]:.2f}, {numbers['x0_max'][index]:.2f}]"
        f" · {clipping} · σ {sigma[index]:.4f}"
    )


def frame_texts(compact: CompactTrajectory) -> list[str]:
    """Per-frame diagnostics of every step, one Markdown line each (the numbers of the diagnostics figure)."""
    numbers = run_diagnostics(compact, compact.settings.schedule)
    sigma = compact.std.mean(dim=1).double().numpy()
    return [_text_line(numbers, sigma, compact, k) for k in range(len(compact))]


def frame_text(compact: CompactTrajectory, index: int) -> str:
    """Per-frame diagnostics of step `index` in one Markdown line."""
    check_int("step", index, 0, len(compact) - 1)
    return frame_texts(compact)[index]


def diagnostics_of(runs: SessionRuns):
    """The diagnostics figure of a session's run, with its branch beside it when there is one."""
    run = runs.run.compact
    numbers = run_diagnostics(run, run.settings.schedule)
    if runs.branch is None:
        return diagnostics_figure(numbers)
    branch = runs.branch.compact
    label = f"branch from frame {frame_of(runs.branch_from)}"
    return diagnostics_figure(numbers, branch=(run_diagnostics(branch, branch.settings.schedule), label))


def finish(compact: CompactTrajectory, values: RunValues, request: Any, branch_from: int | None = None) -> RunResult:
    """Keep the run made with the Run controls `values` (or, from `branch_from`, the branch beside it) for this
    session; its last frame, the diagnostics and the final samples."""
    model = values.ref
    if branch_from is None:
        stored = keep_run(request, compact, model, values)
    else:
        stored = keep_branch(request, compact, model, branch_from, values)
    runs = session_runs(request)
    drawing = drawing_of(model)
    last = len(compact) - 1
    return RunResult(
        runs=runs,
        stored=stored,
        index=last,
        picture=frame_picture(compact, last, drawing),
        text=frame_text(compact, last),
        figure=diagnostics_of(runs),
        finals=finals_picture(compact.samples, dataset_of(model), drawing),
    )


# --- run ---------------------------------------------------------------------------------------------------


def run(
    values: RunValues, step: StepValues, schedule: ScheduleValues, request: Any = None, progress: Progress | None = None
) -> Iterator[Said | Streamed | RunResult]:
    """Sample with the Run controls, recording compactly as it goes; at the end the run is kept for this session
    (`request` names it) and returned. Streams at most STREAM_FRAMES steps."""
    denoiser, settings = parse_run(values, step, schedule)
    recorder = CompactRecorder(denoiser.name, denoiser.prediction, settings)
    total = settings.num_inference_steps
    every, tick = max(1, total // STREAM_FRAMES), max(1, total // PROGRESS_TICKS)
    with computing(request):
        if (note := long_run_note(denoiser, settings)) is not None:
            yield Said(note)
        estimate, start = run_seconds(denoiser, settings), time.perf_counter()
        with torch.no_grad():
            for record in iterate(denoiser, settings):
                recorder.add(record)
                if progress is not None and (recorder.count % tick == 0 or recorder.count == total):
                    progress(recorder.count, total)
                if recorder.count % every == 0 and recorder.count < total:
                    yield Streamed(record, recorder.count, total, denoiser.prediction)
        record_run_time(denoiser, settings, time.perf_counter() - start, estimate)
        yield finish(recorder.finish(), values, request)
