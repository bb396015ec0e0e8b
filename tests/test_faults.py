"""Faults during a run, injected: GPU out-of-memory, a model that outputs NaN, a Hub that cannot be reached.

Each must end the request with a message the user can read (a `gr.Error`), free what the run held, and leave
the next request working. The handlers are called as plain functions, as Gradio calls them.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import gradio as gr
import pytest
import torch
from app_fixtures import FakeRequest, ensure_models, no_progress

from explorer.models.checkpoint import ModuleDenoiser
from ui.controls import RunValues, ScheduleValues, StepValues
from ui.state import STORE

RUN = RunValues(steps=3, spacing="trailing", seed=0, batch=2)
NAN = float("nan")
HUB_BOUND_SECONDS = 20.0  # the offline message must come within this, even when the Hub never answers


@pytest.fixture(scope="module", autouse=True)
def models() -> None:
    ensure_models()


def run(session: str, *, typed: str = ""):
    """Run the sampling handler to the end, as Gradio does; returns its last output."""
    from ui import sampling

    values = RunValues(**{**vars(RUN), "typed": typed})
    step = StepValues(sampler="ddim")
    *_, last = sampling.run(values, step, ScheduleValues(), request=FakeRequest(session), progress=no_progress)
    return last


def oom() -> torch.OutOfMemoryError:
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by test_faults)")


@pytest.fixture
def inject(monkeypatch: pytest.MonkeyPatch) -> Callable[[int, Callable[[], Any]], list]:
    """Make the Nth call of every denoiser's `predict` do `fault` (raise, or return its output); keeps weakrefs."""

    def install(nth: int, fault: Callable[[], Any]) -> list:
        original, calls, held = ModuleDenoiser.predict, [0], []

        def predict(self: ModuleDenoiser, x_t: torch.Tensor, timestep: Any):
            calls[0] += 1
            held.append(weakref.ref(x_t))
            if calls[0] == nth:
                result = fault()
                if isinstance(result, BaseException):
                    raise result
                output = original(self, x_t, timestep)
                return type(output)(**{**vars(output), "prediction": torch.full_like(output.prediction, result)})
            return original(self, x_t, timestep)

        monkeypatch.setattr(ModuleDenoiser, "predict", predict)
        return held

    return install


def test_gpu_out_of_memory_answers_with_a_message(inject, monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    inject(2, oom)
    with pytest.raises(gr.Error, match="out of memory"):
        run("oom-message")
    assert emptied, "torch.cuda.empty_cache() was not called after the out-of-memory error"


def test_gpu_out_of_memory_frees_the_run_and_the_next_request_succeeds(inject, monkeypatch):
    run("oom-next")
    before = STORE.get("oom-next")
    with monkeypatch.context() as scoped:
        original = ModuleDenoiser.predict
        held = inject(2, oom)
        try:
            run("oom-next")
        except (gr.Error, torch.OutOfMemoryError):
            pass
        else:
            pytest.fail("the injected out-of-memory error was swallowed")
        scoped.setattr(ModuleDenoiser, "predict", original)
    gc.collect()
    assert all(ref() is None for ref in held), "tensors of the failed run are still referenced"
    assert STORE.get("oom-next") is before, "the failed run replaced the session's last good run"
    assert "Frame 3 of 3" in run("oom-next").status and STORE.get("oom-next") is not before


@pytest.mark.parametrize("value", [NAN, float("inf")], ids=["nan", "inf"])
def test_non_finite_model_output_stops_the_run_naming_the_step(inject, value):
    inject(2, lambda: value)
    with pytest.raises(gr.Error, match=r"step 2 of 3"):
        run(f"non-finite-{value}")


def test_non_finite_output_keeps_the_last_good_run(inject):
    run("nan-keeps")
    before = STORE.get("nan-keeps")
    inject(2, lambda: NAN)
    with pytest.raises((gr.Error, FloatingPointError), match=r"step 2 of 3"):
        run("nan-keeps")
    assert STORE.get("nan-keeps") is before


def test_hub_offline_gives_the_offline_message_at_once():
    started = time.monotonic()
    with pytest.raises(gr.Error, match="cannot be reached"):
        run("offline", typed="nobody-here/not-cached-model")
    assert time.monotonic() - started < 10


def test_silent_hub_gives_the_offline_message_within_a_bounded_time(silent_hub):
    from explorer.models import loader as hub

    outcome: dict[str, Any] = {}

    def attempt() -> None:
        try:
            run("silent-hub", typed="nobody-here/silent-model")
        except BaseException as error:  # reported to the main thread
            outcome["error"] = error

    hub.clear_cache()
    started = time.monotonic()
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(HUB_BOUND_SECONDS)
    elapsed = time.monotonic() - started
    assert not worker.is_alive(), f"no answer after {elapsed:.0f} s while the Hub is silent"
    assert isinstance(outcome.get("error"), gr.Error), outcome
    assert "cannot be reached" in str(outcome["error"]), str(outcome["error"])


@pytest.mark.parametrize(("T", "steps"), [(565, 7), (565, 14), (565, 56)], ids=["565x7", "565x14", "565x56"])
def test_valid_step_counts_give_a_schedule_view(T, steps):
    """Found by the load test: the Schedules view refused valid controls for some (T, steps) pairs."""
    from ui import schedules
    from ui.schedules import ViewValues

    view = ViewValues(show2=False, show3=False, t=100, num_steps=steps)
    _figure, table, *_ = schedules.update_schedules(view, ScheduleValues(T=T), ScheduleValues(), ScheduleValues())
    assert "t = 100" in table
