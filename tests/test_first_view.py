"""The page is sent with the Schedules view of the default controls already drawn (its first plot needs no event);
on load that view is recomputed only when a link changed a control."""

from __future__ import annotations

import json

import gradio as gr
from app_fixtures import ensure_models

from ui import schedules
from ui.controls import ScheduleValues
from ui.schedules import ViewValues

ensure_models()
import app  # noqa: E402 (after the bundled models exist)

DEFAULTS = (ScheduleValues("linear"), ScheduleValues("squaredcos_cap_v2"), ScheduleValues("linear", zero_snr=True))


def _props(elem_id: str) -> dict:
    config = app.demo.get_config_file()
    return next(c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def test_the_page_carries_the_default_schedule_view():
    figure = json.loads(_props("schedule_plot")["value"]["plot"])
    names = {trace.get("name") for trace in figure["data"]}
    assert {"1: linear, T=1000", "2: squaredcos_cap_v2, T=1000"} <= names
    assert "t = 500" in _props("schedule_table")["value"]
    assert r"\tilde\beta_{500}" in _props("schedule_formulas")["value"]


def test_opening_with_the_defaults_sends_only_the_strip():
    """The noised strip is a picture (a file Gradio serves from its swept cache): sent with each page, never baked
    into the page's config, where it would be deleted under a running server."""
    assert _props("noised_strip").get("value") is None
    figure, table, formulas, spacings, strip, caption, t, steps = schedules.open_schedules(ViewValues(), *DEFAULTS)
    assert all(output == gr.skip() for output in (figure, table, formulas, spacings, caption, t, steps))
    assert strip.size == schedules.update_schedules(ViewValues(), *DEFAULTS)[4].size


def test_opening_a_link_that_changed_a_control_draws_its_view():
    view = ViewValues(t=123)
    opened = schedules.open_schedules(view, *DEFAULTS)
    updated = schedules.update_schedules(view, *DEFAULTS)
    assert opened[1] == updated[1] and "t = 123" in opened[1]
    assert opened[0].to_json() == updated[0].to_json()
