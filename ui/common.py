"""What every view shares: `ValueError` as `gr.Error`, the GPU wrapper, event queues, the local/hosted switch."""

from __future__ import annotations

import functools
import gc
import html
import inspect
import os
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr
import torch

F = TypeVar("F", bound=Callable[..., Any])

ERROR_SECONDS = 8
# Event queues. Model work (runs, branches, comparisons, exports) shares two workers, and `ui.admission` (installed
# by `ui.launch.configure_queue` on every event whose concurrency_id is "model") admits at most 2 such jobs per
# client and 12 in all before they are queued. The schedule and posterior views share a few workers: the load test
# showed unlimited ones all running at once on 2 cores (30 users: every request took a minute); a finite limit lets
# the queue do the waiting. Frame stepping stays unlimited (no model, a PNG).
MODEL_WORK: dict[str, Any] = {"concurrency_id": "model", "concurrency_limit": 2}
VIEW_WORK: dict[str, Any] = {"concurrency_id": "views", "concurrency_limit": 4}


OUT_OF_MEMORY = "the GPU ran out of memory during this run (its memory was freed): try fewer steps or a smaller batch"


def _out_of_memory() -> gr.Error:
    """Free what the failed run held, then the message; raised `from None` so no traceback keeps tensors alive."""
    gc.collect()
    torch.cuda.empty_cache()  # a no-op when CUDA was never initialised
    return gr.Error(OUT_OF_MEMORY, duration=ERROR_SECONDS, print_exception=False)


def refusal(error: Exception) -> gr.Error:
    """A refusal the user sees: the message escaped (a toast renders its text as HTML, and a message may quote what
    was sent) and no traceback in the server's log (a refusal is an answer, not a fault)."""
    return gr.Error(html.escape(str(error), quote=False), duration=ERROR_SECONDS, print_exception=False)


def user_errors(handler: F) -> F:
    """Answer bad input (`ValueError`, naming the field and range), a non-finite model output
    (`FloatingPointError`, naming the step) and GPU out-of-memory with a `gr.Error` the user sees."""
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def generator(*args: Any, **kwargs: Any):
            try:
                yield from handler(*args, **kwargs)
            except (ValueError, FloatingPointError) as error:
                raise refusal(error) from error
            except torch.OutOfMemoryError:
                raise _out_of_memory() from None

        return generator  # type: ignore[return-value]

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return handler(*args, **kwargs)
        except (ValueError, FloatingPointError) as error:
            raise refusal(error) from error
        except torch.OutOfMemoryError:
            raise _out_of_memory() from None

    return wrapper  # type: ignore[return-value]


def on_gpu(handler: F | None = None, *, duration: Callable[..., int] | None = None) -> Any:
    """Wrap model work with `spaces.GPU` when that package is importable (a no-op outside ZeroGPU).

    `duration`, called with the handler's arguments, sizes the GPU slot in seconds (`ui.estimate`); used as
    `@on_gpu` or `@on_gpu(duration=...)`.
    """
    if handler is None:
        return functools.partial(on_gpu, duration=duration)
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return handler
    if duration is None:
        return spaces.GPU(handler)
    return spaces.GPU(handler, duration=duration)


def running_on_space() -> bool:
    """True on a hosted Hugging Face Space (SPACE_ID is set): local paths are refused there."""
    return bool(os.environ.get("SPACE_ID"))


def slider_events(*sliders: gr.Slider) -> list:
    """The triggers for a cheap view update: every drag tick (`.input`) and the pointer-up (`.release`)."""
    triggers = []
    for slider in sliders:
        triggers += [slider.input, slider.release]
    return triggers
