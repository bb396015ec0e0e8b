"""Schedules view: up to three noise schedules overlaid, one step explained, sampler spacings, a noised digit."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import torch
from PIL import Image

from explorer import BetaSchedule, Schedule, TimestepSpacing, inference_timesteps, q_sample
from explorer.diffusion.schedules import MAX_TIMESTEPS, MIN_TIMESTEPS
from explorer.figures.formulas import spacing_table, step_formulas, step_table
from explorer.figures.images import image_grid
from explorer.figures.schedules import LabelledSchedule, XAxis, schedule_figure
from explorer.validation import check_bool, check_choice, check_float, check_int
from ui.common import VIEW_WORK, example_digit, slider_events, user_errors

SLIDER_MAX_T = 4000
STRIP_FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
STRIP_SEED = 0
FAMILIES = [
    ("linear (DDPM)", "linear"),
    ("scaled_linear (latent diffusion)", "scaled_linear"),
    ("cosine (squaredcos_cap_v2)", "squaredcos_cap_v2"),
    ("sigmoid", "sigmoid"),
]
DEFAULTS = (
    ("linear", 1000, 1e-4, 0.02, 0.008, False),
    ("squaredcos_cap_v2", 1000, 1e-4, 0.02, 0.008, False),
    ("linear", 1000, 1e-4, 0.02, 0.008, True),
)
INTRO = """### How much noise at each step?
The forward process adds Gaussian noise with variance β<sub>t</sub> at each step; everything else follows from β.
**t is the paper's step, 1..T** (code and diffusers index it from 0). Compare up to three schedules; the dotted
line marks the chosen t, whose numbers are substituted into the formulas below."""


@dataclass(frozen=True)
class ScheduleView:
    """Everything the Schedules view shows for one set of controls."""

    figure: object  # plotly Figure
    table: str  # Markdown
    formulas: str  # Markdown with LaTeX
    spacings: str  # Markdown
    strip: Image.Image
    strip_caption: str


def parse_schedule(
    slot: int, family: str, T: float, beta_start: float, beta_end: float, offset: float, zero_snr: bool
) -> Schedule:
    """Build schedule number `slot` (1..3) from raw control values, naming the field of any bad value."""
    name = f"schedule {slot}"
    kind = check_choice(f"{name} family", family, BetaSchedule)
    count = check_int(f"{name} T", T, MIN_TIMESTEPS, MAX_TIMESTEPS)
    start = check_float(f"{name} β start", beta_start, 0, 1, low_open=True, high_open=True)
    end = check_float(f"{name} β end", beta_end, 0, 1, low_open=True, high_open=True)
    if kind is not BetaSchedule.SQUAREDCOS_CAP_V2 and start > end:
        raise ValueError(f"{name} β start must not exceed β end; got {start:g} > {end:g}")
    cosine_offset = check_float(f"{name} cosine offset", offset, 0, 0.5)
    rescale = check_bool(f"{name} zero terminal SNR", zero_snr)
    return Schedule.from_name(
        kind, count, beta_start=start, beta_end=end, rescale_zero_terminal_snr=rescale, cosine_offset=cosine_offset
    )


def _label(slot: int, schedule: Schedule) -> str:
    return f"{slot}: {schedule.name}, T={schedule.num_train_timesteps}"


def noised_strip(schedules: list[Schedule], *, seed: int = STRIP_SEED) -> tuple[Image.Image, str]:
    """One real digit noised to several fractions of each schedule's T, one row per schedule, same ε."""
    x0 = example_digit(0)  # [1, 1, 16, 16]
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    rows = []
    for schedule in schedules:
        T = schedule.num_train_timesteps
        steps = torch.tensor([max(1, round(f * T)) - 1 for f in STRIP_FRACTIONS[1:]])
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


@user_errors
def update_schedules(
    family1: str,
    T1: float,
    beta_start1: float,
    beta_end1: float,
    offset1: float,
    zero_snr1: bool,
    show2: bool,
    family2: str,
    T2: float,
    beta_start2: float,
    beta_end2: float,
    offset2: float,
    zero_snr2: bool,
    show3: bool,
    family3: str,
    T3: float,
    beta_start3: float,
    beta_end3: float,
    offset3: float,
    zero_snr3: bool,
    x_axis: str,
    t: float,
    num_steps: float,
):
    """The Schedules view for raw control values: figure, table, formulas, spacings, noised strip."""
    view = schedule_view(
        [
            (True, family1, T1, beta_start1, beta_end1, offset1, zero_snr1),
            (show2, family2, T2, beta_start2, beta_end2, offset2, zero_snr2),
            (show3, family3, T3, beta_start3, beta_end3, offset3, zero_snr3),
        ],
        x_axis=x_axis,
        t=t,
        num_steps=num_steps,
    )
    return view.figure, view.table, view.formulas, view.spacings, view.strip, view.strip_caption


def schedule_view(slots: list[tuple], *, x_axis: str, t: float, num_steps: float) -> ScheduleView:
    """Validate every control, hidden schedules' too, then build the view.

    t and the step count are clamped to schedule 1's T.
    """
    axis = check_choice("x axis", x_axis, XAxis)
    schedules: list[Schedule] = []
    for slot, (shown, *values) in enumerate(slots, start=1):
        schedule = parse_schedule(slot, *values)
        if check_bool(f"show schedule {slot}", shown):
            schedules.append(schedule)
    first = schedules[0]
    T = first.num_train_timesteps
    chosen = min(check_int("t", t, 1, MAX_TIMESTEPS), T)
    steps = min(check_int("sampling steps", num_steps, 1, MAX_TIMESTEPS), T)
    visited = {spacing.value: inference_timesteps(T, steps, spacing) for spacing in TimestepSpacing}
    labelled = [LabelledSchedule(s, _label(k, s)) for k, s in enumerate(schedules, start=1)]
    figure = schedule_figure(labelled, t=chosen, x_axis=axis, visited=visited)
    table = step_table([(item.label, item.schedule) for item in labelled], chosen)
    strip, caption = noised_strip(schedules)
    spacings = f"**A {steps}-step sampler on schedule 1** visits (paper t):\n\n" + spacing_table(first, visited)
    return ScheduleView(figure, table, step_formulas(first, chosen), spacings, strip, caption)


@user_errors
def rescale_t_sliders(T1: float, t: float, num_steps: float):
    """When schedule 1's T changes, keep t and the step count inside 1..T."""
    T = check_int("schedule 1 T", T1, MIN_TIMESTEPS, MAX_TIMESTEPS)
    chosen = min(check_int("t", t, 1, MAX_TIMESTEPS), T)
    steps = min(check_int("sampling steps", num_steps, 1, MAX_TIMESTEPS), T)
    return gr.Slider(maximum=T, value=chosen), gr.Slider(maximum=T, value=steps)


def _schedule_controls(slot: int, defaults: tuple) -> list[gr.components.Component]:
    family, T, start, end, offset, zero = defaults
    controls: list[gr.components.Component] = []
    with gr.Column(min_width=220):
        if slot == 1:
            gr.Markdown("**Schedule 1** (the one explained below)")
        else:
            controls.append(gr.Checkbox(label=f"Compare schedule {slot}", value=slot == 2, elem_id=f"show{slot}"))
        controls += [
            gr.Dropdown(FAMILIES, value=family, label="family", elem_id=f"family{slot}"),
            gr.Slider(MIN_TIMESTEPS, SLIDER_MAX_T, value=T, step=1, label="T (number of steps)", elem_id=f"T{slot}"),
        ]
        with gr.Row():
            controls += [
                gr.Number(start, label="β start", step=1e-4, minimum=1e-6, maximum=0.999, elem_id=f"bs{slot}"),
                gr.Number(end, label="β end", step=1e-3, minimum=1e-6, maximum=0.999, elem_id=f"be{slot}"),
            ]
        controls += [
            gr.Slider(0, 0.5, value=offset, step=0.001, label="cosine offset s", elem_id=f"off{slot}"),
            gr.Checkbox(label="zero terminal SNR (rescale so ᾱ_T = 0)", value=zero, elem_id=f"zsnr{slot}"),
        ]
    return controls


def build() -> dict[str, gr.components.Component]:
    """Lay out the view inside the current Blocks context and wire its events; returns named components."""
    gr.Markdown(INTRO)
    controls: list[gr.components.Component] = []
    with gr.Row():
        for slot, defaults in enumerate(DEFAULTS, start=1):
            controls += _schedule_controls(slot, defaults)
    with gr.Row():
        x_axis = gr.Radio([m.value for m in XAxis], value=XAxis.T.value, label="plot against", scale=1)
        t = gr.Slider(1, 1000, value=500, step=1, label="t (paper step, 1..T of schedule 1)", elem_id="sched_t")
        num_steps = gr.Slider(1, 1000, value=50, step=1, label="sampling steps", elem_id="sched_steps", scale=2)
    plot = gr.Plot(label="schedule tables", elem_id="schedule_plot")
    with gr.Row():
        table = gr.Markdown(elem_id="schedule_table")
        formulas = gr.Markdown(elem_id="schedule_formulas")
    spacings = gr.Markdown()
    strip = gr.Image(label="one digit, noised", format="png", type="pil", interactive=False, elem_id="noised_strip")
    caption = gr.Markdown()

    inputs = [*controls, x_axis, t, num_steps]
    outputs = [plot, table, formulas, spacings, strip, caption]
    sliders = [c for c in controls if isinstance(c, gr.Slider)] + [t, num_steps]
    others = [c for c in controls if not isinstance(c, gr.Slider)] + [x_axis]
    gr.on(
        triggers=slider_events(*sliders) + [c.change for c in others],
        fn=update_schedules,
        inputs=inputs,
        outputs=outputs,
        trigger_mode="always_last",
        **VIEW_WORK,
        api_name="schedules",
        show_progress="hidden",
    )
    T1 = controls[1]
    T1.release(
        rescale_t_sliders,
        [T1, t, num_steps],
        [t, num_steps],
        api_visibility="private",
        **VIEW_WORK,
    ).then(update_schedules, inputs, outputs, api_visibility="private", **VIEW_WORK)
    return {"inputs": inputs, "outputs": outputs, "t": t, "family1": controls[0], "T1": T1}
