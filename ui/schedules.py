"""Schedules view: up to three noise schedules overlaid, one step explained, sampler spacings, a noised digit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
import torch
from PIL import Image

from explorer.data import example_digit
from explorer.diffusion.indexing import timestep_of
from explorer.diffusion.posterior import q_sample
from explorer.diffusion.schedules import MAX_TIMESTEPS, Schedule, TimestepSpacing, inference_timesteps
from explorer.figures.formulas import spacing_table, step_formulas, step_table
from explorer.figures.images import image_grid
from explorer.figures.schedules import LabelledSchedule, XAxis, schedule_figure
from explorer.validation import check_bool, check_choice, check_int
from ui.api_names import named
from ui.common import MODEL_WORK, VIEW_WORK, slider_events, user_errors
from ui.controls import (
    SLIDER_MAX_T,
    ControlGroup,
    ScheduleControls,
    ScheduleValues,
    bind,
    event_inputs,
    schedule_values_of,
)
from ui.models import check_ref, load_model, model_choices

STRIP_FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
STRIP_SEED = 0
DEFAULTS = (
    ScheduleValues("linear"),
    ScheduleValues("squaredcos_cap_v2"),
    ScheduleValues("linear", zero_snr=True),
)
INTRO = """### How much noise at each step?
The forward process adds Gaussian noise with variance β<sub>t</sub> at each step; everything else follows from β.
**t is the paper's step, 1..T** (code and diffusers index it from 0). Compare up to three schedules; the dotted
line marks the chosen t, whose numbers are substituted into the formulas below."""


@dataclass(frozen=True)
class ViewValues:
    """The Schedules view's own controls: which schedules are compared, the x axis, the step t and a step count."""

    show2: bool = True
    show3: bool = False
    x_axis: str = XAxis.T.value
    t: float = 500
    num_steps: float = 50


@dataclass(frozen=True)
class ScheduleView:
    """Everything the Schedules view shows for one set of controls."""

    figure: Any  # plotly Figure
    table: str  # Markdown
    formulas: str  # Markdown with LaTeX
    spacings: str  # Markdown
    strip: Image.Image
    strip_caption: str
    t: int  # the step shown: the control's t, clamped to schedule 1's T
    num_steps: int  # the sampler's step count, clamped likewise
    max_t: int  # schedule 1's T: the most either slider can mean


def _follow(field: str, given: float, used: int, maximum: int) -> Any:
    """A slider's update: its range ends at schedule 1's T, and its value moves to what the view used when that
    differs (it was beyond T), with a warning that says so rather than a silent clamp."""
    if float(given) != used:
        gr.Warning(f"{field}: {given:g} is beyond T = {maximum} of schedule 1; {used} is shown")
        return gr.Slider(value=used, maximum=maximum)
    return gr.Slider(maximum=maximum)


def _label(slot: int, schedule: Schedule) -> str:
    return f"{slot}: {schedule.name}, T={schedule.num_train_timesteps}"


def noised_strip(schedules: list[Schedule], *, seed: int = STRIP_SEED) -> tuple[Image.Image, str]:
    """One real digit noised to several fractions of each schedule's T, one row per schedule, same ε."""
    x0 = example_digit(0)  # [1, 1, 16, 16]
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    rows = []
    for schedule in schedules:
        T = schedule.num_train_timesteps
        steps = torch.tensor([timestep_of(max(1, round(f * T))) for f in STRIP_FRACTIONS[1:]])
        batch = x0.expand(len(steps), -1, -1, -1)  # [S, 1, 16, 16]
        x_t = q_sample(schedule, batch, steps, noise=eps.expand_as(batch))
        rows.append(torch.cat([x0, x_t]))
    picture = image_grid(torch.cat(rows), columns=len(STRIP_FRACTIONS), scale=5)
    first_t = [max(1, round(f * schedules[0].num_train_timesteps)) for f in STRIP_FRACTIONS[1:]]
    caption = (
        "Columns: x₀, then x<sub>t</sub> = √ᾱ<sub>t</sub> x₀ + √(1−ᾱ<sub>t</sub>) ε with the same ε, at t = "
        + ", ".join(str(t) for t in first_t)
        + " (for schedule 1; the same fractions of T for the others). One row per schedule."
    )
    return picture, caption


def schedule_view(view: ViewValues, slots: tuple[ScheduleValues, ...]) -> ScheduleView:
    """Validate every control, hidden schedules' too, then build the view. t and the step count are clamped to
    schedule 1's T."""
    axis = check_choice("x axis", view.x_axis, XAxis)
    shown = (True, check_bool("show schedule 2", view.show2), check_bool("show schedule 3", view.show3))
    parsed = [values.parse(slot) for slot, values in enumerate(slots, start=1)]
    schedules = [schedule for schedule, visible in zip(parsed, shown, strict=True) if visible]
    first = schedules[0]
    T = first.num_train_timesteps
    chosen = min(check_int("t", view.t, 1, MAX_TIMESTEPS), T)
    steps = min(check_int("sampling steps", view.num_steps, 1, MAX_TIMESTEPS), T)
    visited = {spacing.value: inference_timesteps(T, steps, spacing) for spacing in TimestepSpacing}
    labelled = [LabelledSchedule(s, _label(k, s)) for k, s in enumerate(schedules, start=1)]
    figure = schedule_figure(labelled, t=chosen, x_axis=axis, visited=visited)
    table = step_table([(item.label, item.schedule) for item in labelled], chosen)
    strip, caption = noised_strip(schedules)
    spacings = f"**A {steps}-step sampler on schedule 1** visits (paper t):\n\n" + spacing_table(first, visited)
    return ScheduleView(figure, table, step_formulas(first, chosen), spacings, strip, caption, chosen, steps, T)


@user_errors
def update_schedules(view: ViewValues, first: ScheduleValues, second: ScheduleValues, third: ScheduleValues):
    """The Schedules view: figure, table, formulas, spacings, noised strip; then t and the step count, moved to
    schedule 1's T when they were beyond it (so the sliders always show the step the formulas use)."""
    shown = schedule_view(view, (first, second, third))
    t = _follow("t", view.t, shown.t, shown.max_t)
    steps = _follow("sampling steps", view.num_steps, shown.num_steps, shown.max_t)
    return shown.figure, shown.table, shown.formulas, shown.spacings, shown.strip, shown.strip_caption, t, steps


class ViewControls(ControlGroup[ViewValues]):
    values = ViewValues

    def __init__(self, show2: gr.Checkbox, show3: gr.Checkbox, defaults: ViewValues = ViewValues()) -> None:
        with gr.Row():
            x_axis = gr.Radio(
                [m.value for m in XAxis], value=defaults.x_axis, label="plot against", scale=1, elem_id="x_axis"
            )
            t = gr.Slider(
                1, SLIDER_MAX_T, value=defaults.t, step=1, label="t (paper step, 1..T of schedule 1)", elem_id="sched_t"
            )
            steps = gr.Slider(
                1,
                SLIDER_MAX_T,
                value=defaults.num_steps,
                step=1,
                label="sampling steps",
                elem_id="sched_steps",
                scale=2,
            )
        self.components = {"show2": show2, "show3": show3, "x_axis": x_axis, "t": t, "num_steps": steps}


@functools.cache
def first_view() -> ScheduleView:
    """The view of the default controls, computed once: the page is sent with it drawn (`build`)."""
    return schedule_view(ViewValues(), DEFAULTS)


@user_errors
def open_schedules(view: ViewValues, first: ScheduleValues, second: ScheduleValues, third: ScheduleValues):
    """The page-load update. When the controls hold their defaults the page already shows their figure; this sends
    the rest of their view: the table, formulas and spacings (left out of the page so that the first plot is drawn
    ~0.1 s sooner: their KaTeX and tables are laid out after it) and the noised strip (a picture is a file in
    Gradio's cache, which the app sweeps: it is sent with each page instead). Otherwise (a link set some control)
    `update_schedules`."""
    if (view, first, second, third) == (ViewValues(), *DEFAULTS):
        shown = first_view()
        return (gr.skip(), shown.table, shown.formulas, shown.spacings, shown.strip, *(gr.skip(),) * 3)
    return update_schedules(view, first, second, third)


@dataclass(frozen=True)
class SchedulesTab:
    """What other views and the app need from the Schedules view."""

    slots: tuple[ScheduleControls, ...]  # the three schedules; the first is the one the Posterior and runs read
    controls: ViewControls
    update: Callable[..., Any]  # the event function of every change
    open: Callable[..., Any]  # the event function for the page load (`open_schedules`)
    inputs: list
    outputs: list

    @property
    def first(self) -> ScheduleControls:
        return self.slots[0]


def build() -> SchedulesTab:
    """Lay out the view inside the current Blocks context and wire its events. The figure of the default controls
    (`first_view`) is sent with the page: the first plot needs no event (a link's changes redraw it on load)."""
    shown = first_view()
    gr.Markdown(INTRO, elem_classes="notes")  # behind the notes toggle in presentation mode (ui.stage)
    slots: list[ScheduleControls] = []
    shows: list[gr.Checkbox] = []
    with gr.Row():
        for slot, defaults in enumerate(DEFAULTS, start=1):
            with gr.Column(min_width=220):
                if slot == 1:
                    gr.Markdown("**Schedule 1** (the one explained below)")
                else:
                    shows.append(gr.Checkbox(label=f"Compare schedule {slot}", value=slot == 2, elem_id=f"show{slot}"))
                slots.append(ScheduleControls(slot, defaults))
                if slot == 1:
                    with gr.Row():
                        source = gr.Dropdown(
                            model_choices(),
                            value=None,
                            label="or a model's training schedule",
                            scale=3,
                            elem_id="schedule_model",
                            allow_custom_value=True,
                        )
                        take = gr.Button("use it", size="sm", scale=1, elem_id="use_model_schedule")
    view = ViewControls(*shows)
    plot = gr.Plot(shown.figure, label="schedule tables", elem_id="schedule_plot")
    with gr.Row():  # filled by the page-load event, after the first plot (`open_schedules`)
        table = gr.Markdown(elem_id="schedule_table")
        formulas = gr.Markdown(elem_id="schedule_formulas")
    spacings = gr.Markdown(elem_id="schedule_spacings")
    strip = gr.Image(label="one digit, noised", format="png", type="pil", interactive=False, elem_id="noised_strip")
    caption = gr.Markdown(shown.strip_caption)

    groups = (view, *slots)
    update, inputs = bind(update_schedules, *groups), event_inputs(*groups)
    components = [c for group in groups for c in group.components.values()]
    sliders = [c for c in components if isinstance(c, gr.Slider)]
    # t and the step count are outputs too: a T below them moves them (their maxima stay fixed, so that no event
    # in flight can carry a value beyond a maximum that moved meanwhile).
    t, num_steps = view.components["t"], view.components["num_steps"]
    outputs = [plot, table, formulas, spacings, strip, caption, t, num_steps]
    gr.on(
        triggers=slider_events(*sliders) + [c.change for c in components if not isinstance(c, gr.Slider)],
        fn=update,
        inputs=inputs,
        outputs=outputs,
        trigger_mode="always_last",
        **VIEW_WORK,
        api_name="schedules",
        show_progress="hidden",
    )
    first = slots[0]
    take.click(
        named(model_schedule, [source]),
        [source],
        [first.components[name] for name in SCHEDULE_FIELDS],
        api_name="model_schedule",
        **MODEL_WORK,
    ).then(update, inputs, outputs, api_visibility="private", show_progress="hidden", **VIEW_WORK)
    return SchedulesTab(tuple(slots), view, update, bind(open_schedules, *groups), inputs, outputs)


SCHEDULE_FIELDS = ("family", "T", "beta_start", "beta_end", "cosine_offset", "zero_snr")


@user_errors
def model_schedule(ref: str) -> tuple:
    """Schedule 1's controls set to a model's training schedule (the model is loaded, or downloaded, once)."""
    check_ref(ref)
    denoiser = load_model(ref)
    config = getattr(denoiser, "scheduler_config", None)
    if not config:
        raise ValueError(f"{ref} has no scheduler config to read its training schedule from")
    values = schedule_values_of(config, ref)
    return tuple(getattr(values, name) for name in SCHEDULE_FIELDS)
