"""Restore a view from the URL for talks: ?tab=sampling&schedule=cosine&t=300&model=…&seed=3&steps=50&frame=5.

frame=N runs a bundled model with the restored controls when the page opens and shows frame N of that run; a Hub
model in a link is shown in the model box and runs only when the visitor presses Run. A local path is refused.
"""

from __future__ import annotations

import gradio as gr

from explorer.diffusion.schedules import MAX_TIMESTEPS, BetaSchedule
from explorer.validation import check_choice, check_int, check_seed
from ui.controls import MAX_STEPS
from ui.models import is_bundled

TABS = ("schedules", "posterior", "sampling", "parameterizations")


def _tab(value: str) -> gr.Tabs:
    if value not in TABS:
        raise ValueError(f"tab must be one of {', '.join(TABS)}")
    return gr.Tabs(selected=value)


def _model(value: str) -> str:
    """A bundled name or a Hub id (string checks only: nothing is loaded here)."""
    is_bundled(value.strip())
    return value.strip()


def restore(request: gr.Request):
    """Tab, schedule 1 family, t, model, seed, steps, frame, presentation from the URL.

    Absent or bad values change nothing (a bad one shows a warning).
    """
    params = dict(request.query_params) if request is not None else {}

    def read(key: str, parse):
        if key not in params:
            return gr.skip()
        try:
            return parse(params[key])
        except ValueError:
            gr.Warning(f"URL parameter {key}={params[key]!r} ignored")
            return gr.skip()

    tab = read("tab", _tab)
    family = read("schedule", lambda v: check_choice("schedule", v, BetaSchedule).value)
    t = read("t", lambda v: check_int("t", v, 1, MAX_TIMESTEPS))
    model = read("model", _model)
    seed = read("seed", check_seed)
    steps = read("steps", lambda v: check_int("steps", v, 1, MAX_STEPS))
    frame = read("frame", lambda v: check_int("frame", v, 1, MAX_STEPS))
    large = read("present", lambda v: v.lower() in ("1", "true", "yes"))
    return tab, family, t, model, seed, steps, frame, large
