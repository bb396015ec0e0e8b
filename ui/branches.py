"""A branch from a frame of the session's run, Gradio-free: rerun it from there with other step settings (and, for a
conditional model, another guidance scale) on the same noise, keep it beside the run, and say what differs.

Like `ui.runs.run`, `branch` is a generator: a `Said` line, then one `RunResult`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from explorer.diffusion.denoiser import Denoiser
from explorer.diffusion.indexing import frame_of
from explorer.diffusion.sampler import branch_settings, iterate_branch
from explorer.diffusion.settings import SamplerKind, SamplerSettings
from explorer.diffusion.shipped import check_branchable
from explorer.diffusion.trajectory import CompactRecorder, CompactTrajectory, compact_nbytes
from explorer.validation import check_int
from ui import state
from ui.estimate import is_guided
from ui.models import load_model
from ui.runs import PROGRESS_TICKS, Bindable, Progress, RunResult, Said, bind_model, finish, frame_index
from ui.state import MIB, SessionRuns, StoredRun, computing, session_runs
from ui.values import MAX_STEPS, RunValues, ScheduleValues, StepValues


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


def branch_sentence(
    run: SamplerSettings, branch: SamplerSettings, index: int, guidance: tuple[str, str] | None = None
) -> str:
    """Which settings of a branch from run position `index` differ from the run's, in one sentence; `guidance`:
    the guidance scale of the branch and of the run, as said (None: a model without guidance)."""

    def schedule_name(settings: SamplerSettings) -> str:
        schedule = settings.schedule
        return f"{schedule.name}, T = {schedule.num_train_timesteps}"

    pairs = [
        ("sampler", branch.sampler.value, run.sampler.value),
        ("η", f"{branch.eta:g}", f"{run.eta:g}"),
        ("variance", branch.variance.value, run.variance.value),
        ("clipping of x̂₀", "on" if branch.clip_sample else "off", "on" if run.clip_sample else "off"),
        ("schedule", schedule_name(branch), schedule_name(run)),
        ("guidance scale", *(guidance or ("", ""))),
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


def branch_note(runs: SessionRuns) -> str:
    """The sentence under the run/branch selector: what the session's branch changed ("" without a branch)."""
    if runs.branch is None:
        return ""
    guidance = tuple(_guidance_name(stored) for stored in (runs.branch, runs.run))
    return branch_sentence(runs.run.compact.settings, runs.branch.compact.settings, runs.branch_from, guidance)


def _guidance_name(stored: StoredRun) -> str:
    scale = stored.values.conditioning().guidance_scale if stored.values is not None else None
    return "the model's own" if scale is None else f"{scale:g}"


def branch_refusal(runs: SessionRuns) -> str | None:
    """Why Branch cannot apply to the session's run from any frame (None: it can from some): a run of a multistep
    scheduler of its own (sampler `scheduler`) keeps earlier model outputs inside the scheduler."""
    settings = runs.run.compact.settings
    if settings.sampler is not SamplerKind.SCHEDULER:
        return None
    try:
        check_branchable(settings, load_model(runs.run.model), 0)
    except ValueError as refusal:
        return str(refusal)
    return None


def branch_fits(compact: CompactTrajectory, settings: SamplerSettings, denoiser: Denoiser) -> None:
    """Refuse a branch whose record would not fit beside its run in the session's budget."""
    size = (settings.num_inference_steps, settings.batch_size, denoiser.sample_shape, is_guided(denoiser))
    needs = compact.nbytes + compact_nbytes(*size)
    budget = state.STORE.max_bytes_per_session
    if needs > budget:
        raise ValueError(
            f"run and branch together would keep {needs / MIB:.1f} MiB but a session may keep at most "
            f"{budget / MIB:.0f} MiB: use fewer steps"
        )


def _guided_values(stored: StoredRun, guidance: Any) -> tuple[Denoiser, RunValues]:
    """The model a branch of `stored` steps with, and its Run values: the run's prompt, class label and latent size,
    with the guidance scale `guidance` (None: the run's) for a conditional model. A branch cannot switch guidance
    on or off: a guided run records the conditional and unconditional x̂₀ of every step."""
    values = stored.values if stored.values is not None else RunValues(model=stored.model)
    changed = values if guidance is None else replace(values, guidance=guidance)
    changed.conditioning()  # checked for every model, before anything loads
    model = load_model(stored.model)
    run_model = bind_model(model, values)
    if changed == values or not (isinstance(run_model, Bindable) and run_model.conditional):
        return run_model, values
    branch_model = bind_model(model, changed)
    if is_guided(branch_model) != is_guided(run_model):
        was = "w > 1 (guided)" if is_guided(run_model) else "w ≤ 1 (unguided)"
        raise ValueError(
            f"guidance scale: this run has {was}, and a branch keeps that (a guided run records both passes of "
            "every step); choose a scale on the same side of 1"
        )
    return branch_model, changed


def branch(
    frame: Any,
    step: StepValues,
    schedule: ScheduleValues,
    steps: Any = None,
    request: Any = None,
    progress: Progress | None = None,
    guidance: Any = None,
) -> Iterator[Said | RunResult]:
    """Rerun the session's shown run from frame number `frame` with the step settings, `steps` (the branch's
    total; None: the run's) and `guidance` (a conditional model's scale; None: the run's) on the same noise stream;
    the branch is kept beside the run, which stays."""
    stored = session_runs(request).run
    compact = stored.compact
    index = frame_index(compact, frame)
    denoiser, values = _guided_values(stored, guidance)
    remaining = branch_steps(compact.settings, index, steps)
    settings = branch_settings(compact.settings, denoiser, index, remaining_steps=remaining, **step.parse(schedule))
    branch_fits(compact, settings, denoiser)
    recorder = CompactRecorder.continuing(compact, index, settings)  # compact as it goes, like a run
    total = settings.num_inference_steps
    tick = max(1, total // PROGRESS_TICKS)
    with computing(request):
        yield Said(f"branching from frame {frame_of(index)}…")
        with torch.no_grad():
            for record in iterate_branch(denoiser, settings, compact.x_t[index], index):
                recorder.add(record)
                if progress is not None and (recorder.count % tick == 0 or recorder.count == total):
                    progress(recorder.count, total)
        yield finish(recorder.finish(), values, request, branch_from=index)
