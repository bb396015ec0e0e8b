"""The page is sent with the Schedules figure of the default controls already drawn (its first plot needs no event);
on load the rest of that view follows, and the whole view is recomputed only when a link changed a control."""

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


def test_the_page_carries_the_default_schedule_figure_and_nothing_below_it():
    figure = json.loads(_props("schedule_plot")["value"]["plot"])
    names = {trace.get("name") for trace in figure["data"]}
    assert {"1: linear, T=1000", "2: squaredcos_cap_v2, T=1000"} <= names
    # The table, formulas and spacings are laid out after the first plot: the page-load event sends them.
    assert not any(_props(name).get("value") for name in ("schedule_table", "schedule_formulas", "schedule_spacings"))


def test_opening_with_the_defaults_sends_the_rest_of_the_view_but_not_the_figure():
    """The noised strip is a picture (a file Gradio serves from its swept cache): sent with each page, never baked
    into the page's config, where it would be deleted under a running server."""
    assert _props("noised_strip").get("value") is None
    figure, table, formulas, spacings, strip, caption, t, steps = schedules.open_schedules(ViewValues(), *DEFAULTS)
    assert all(output == gr.skip() for output in (figure, caption, t, steps))
    updated = schedules.update_schedules(ViewValues(), *DEFAULTS)
    assert (table, formulas, spacings) == updated[1:4]
    assert "t = 500" in table and r"\tilde\beta_{500}" in formulas
    assert strip.size == updated[4].size


def test_opening_a_link_that_changed_a_control_draws_its_view():
    view = ViewValues(t=123)
    opened = schedules.open_schedules(view, *DEFAULTS)
    updated = schedules.update_schedules(view, *DEFAULTS)
    assert opened[1] == updated[1] and "t = 123" in opened[1]
    assert opened[0].to_json() == updated[0].to_json()
