"""The run lifecycle (ui/runs.py) as a plain service: typed events and result, no Gradio, and its shared caches."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest
import torch
from app_fixtures import FakeRequest, ensure_models

from explorer.diffusion.indexing import frame_of
from ui import branches, runs, state
from ui.outputs import Outputs, Shown
from ui.values import RunValues, ScheduleValues, StepValues

UI = Path(__file__).parent.parent / "ui"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def test_the_lifecycle_modules_do_not_import_gradio():
    for name in ("runs.py", "branches.py", "values.py", "estimate.py"):
        assert not any(module.split(".")[0] == "gradio" for module in _imports(UI / name)), name


def test_a_run_streams_typed_steps_then_returns_the_kept_run():
    ensure_models()
    request = FakeRequest("runs-typed")
    seen: list[tuple[int, int]] = []
    values = RunValues(steps=80, batch=2, seed=4)
    items = list(runs.run(values, StepValues(sampler="ddim"), ScheduleValues(), request, lambda *p: seen.append(p)))
    *streamed, result = [item for item in items if not isinstance(item, runs.Said)]  # (a long-run note, if slow)
    assert isinstance(result, runs.RunResult) and all(isinstance(item, runs.Streamed) for item in streamed)
    tick = 80 // runs.PROGRESS_TICKS  # at most PROGRESS_TICKS reports (each refreshes the page's loading statuses)
    assert seen == [(k, 80) for k in range(tick, 80, tick)] + [(80, 80)]  # and the last step
    every = 80 // runs.STREAM_FRAMES
    assert [item.done for item in streamed] == list(range(every, 80, every))  # at most STREAM_FRAMES pictures
    kept = state.session_runs(request)
    assert result.runs == kept and result.stored is kept.run and kept.run.values == values
    assert (result.index, result.frames) == (79, 80) and frame_of(result.index) == 80
    assert result.text == runs.frame_text(result.stored.compact, 79) and "Frame 80 of 80" in result.text
    # the last streamed step is the kept record's own step (recorded x_t, in float32)
    last = streamed[-1]
    torch.testing.assert_close(result.stored.compact.x_t[last.done - 1], last.step.x_t.float(), rtol=0, atol=1e-6)


def test_a_branch_says_what_it_starts_and_returns_the_branch_beside_the_run():
    ensure_models()
    request = FakeRequest("runs-branch")
    *_, first = runs.run(RunValues(steps=6, batch=2), StepValues(), ScheduleValues(), request)
    said, result = branches.branch(3, StepValues(sampler="ddim"), ScheduleValues(), None, request)
    assert said == runs.Said("branching from frame 3…")
    assert result.runs.run is first.stored and result.runs.branch is result.stored and result.runs.branch_from == 2
    assert branches.branch_note(result.runs).startswith("Branch from frame 3: sampler ddim (run: ddpm)")


def test_kept_values_are_bounded_and_safe_across_threads():
    kept: state.Kept[int, int] = state.Kept(8)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for k in range(2000):
                assert kept.get((k + offset) % 50, lambda k=k: k) is not None
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(kept) == 8
    assert kept.get(1000, lambda: 5) == 5 and kept.get(1000, lambda: 6) == 5  # made once, then kept


class _Shown(Shown):
    def __init__(self, **fields) -> None:
        self.__dict__.update(fields)

    def updates(self) -> dict:
        return {name: value for name, value in self.__dict__.items() if value is not None}


def test_outputs_answer_only_what_changed():
    import gradio as gr

    with gr.Blocks():
        first, second = gr.Textbox(), gr.Textbox()
    both = Outputs(a=first, b=second)
    assert both.gradio(_Shown(a="x", b=None)) == {first: "x"}
    assert both.gradio(_Shown(a=None, b=None)) == gr.skip()
    assert Outputs(b=second).gradio(_Shown(a="x", b="y")) == "y"  # one output: its value, not a dict

    def handler(n: int):
        yield _Shown(a=str(n), b=None)

    adapted = both.adapt(handler)
    assert adapted.__name__ == "handler" and list(adapted(3)) == [{first: "3"}]


def test_a_branch_of_a_model_without_guidance_checks_the_scale_and_never_names_it():
    ensure_models()
    request = FakeRequest("runs-no-guidance")
    list(runs.run(RunValues(steps=4, batch=2), StepValues(), ScheduleValues(), request))
    with pytest.raises(ValueError, match="guidance scale"):
        list(branches.branch(2, StepValues(), ScheduleValues(), None, request, guidance=float("nan")))
    *_, result = branches.branch(2, StepValues(), ScheduleValues(), None, request, guidance=6.0)
    assert result.runs.branch.values == result.runs.run.values  # digits take no guidance: the run's values
    note = branches.branch_note(result.runs)
    assert "guidance" not in note and "retraces the run" in note
