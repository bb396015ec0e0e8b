"""Control groups: a set of components whose raw values read as one frozen dataclass, parsed in one place.

A view builds its groups inside the Blocks context; an event names the groups it reads, and Gradio passes their
inputs as a set (one dict {component: value}). `bind` turns a handler `handler(*values, request=…, progress=…)`,
whose parameters are these dataclasses, into the function Gradio calls: no handler receives another view's
components by position, and every handler can be called (and tested) with named values.

    group             values              parsed by                 into
    ScheduleControls  ScheduleValues      ScheduleValues.parse      a Schedule
    RunControls       RunValues           ui.runs.parse_run (with the next)  (denoiser, SamplerSettings)
    StepControls      StepValues          StepValues.parse          sampler options a run and a branch share

The values (`ui.values`) and what a run does with them (`ui.runs`) are Gradio-free; this module only lays out and
reads components.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import gradio as gr

from explorer.diffusion.schedules import MIN_TIMESTEPS, TimestepSpacing
from explorer.diffusion.settings import SamplerKind
from ui.api_names import extras_of, named_event, url_name
from ui.models import model_choices
from ui.values import (  # noqa: F401 (the groups' values, parsed there; imported from here by the views)
    MAX_CLASS_LABEL,
    MAX_IMAGE_BATCH,
    MAX_LATENT_SIDE,
    MAX_POINT_BATCH,
    MAX_STEPS,
    RunValues,
    ScheduleChoice,
    ScheduleValues,
    StepValues,
    Toggle,
    VarianceChoice,
    schedule_values_of,
)

V = TypeVar("V")
SLIDER_MAX_T = 4000
FAMILIES = [
    ("linear (DDPM)", "linear"),
    ("scaled_linear (latent diffusion)", "scaled_linear"),
    ("cosine (squaredcos_cap_v2)", "squaredcos_cap_v2"),
    ("sigmoid", "sigmoid"),
]


class ControlGroup(Generic[V]):
    """Components named by the fields of the dataclass `values` (built by the subclass), read back as one value."""

    values: type[V]
    components: dict[str, gr.components.Component]

    @property
    def inputs(self) -> set[gr.components.Component]:
        return set(self.components.values())

    def read(self, given: Mapping[gr.components.Component, Any]) -> V:
        """This group's values out of the dict Gradio passes for a set of inputs."""
        return self.values(**{name: given[component] for name, component in self.components.items()})


class One(ControlGroup[Any]):
    """A single component (or State) read as its plain value; `name` (default: its URL name) names it at the API."""

    def __init__(self, component: gr.components.Component, name: str | None = None) -> None:
        self.component = component
        self.components = {"value": component}
        self.name = name or url_name(component)

    def read(self, given: Mapping[gr.components.Component, Any]) -> Any:
        return given[self.component]


def named_inputs(*groups: ControlGroup[Any]) -> dict[str, gr.components.Component]:
    """Every component of the groups by its name at the API (its URL parameter), in the groups' order."""
    named: dict[str, gr.components.Component] = {}
    for group in groups:
        if isinstance(group, One):
            pairs = [(group.name, group.component)]
        else:
            pairs = [(url_name(component), component) for component in group.components.values()]
        for name, component in pairs:
            if named.setdefault(name, component) is not component:
                raise ValueError(f"two controls are named {name!r}")
    return named


def bind(handler: Callable[..., Any], *groups: ControlGroup[Any]) -> Callable[..., Any]:
    """The function Gradio calls for `handler(*group values)`; pass `inputs=event_inputs(*groups)` with it.

    Its parameters are the controls' URL names (so the API names them too), then the request, and the progress
    tracker of a streaming handler, which pass through when the handler takes them.
    """

    def call(given: dict, **extras: Any) -> Any:
        return handler(*(group.read(given) for group in groups), **extras)

    return named_event(named_inputs(*groups), call, like=handler, extras=extras_of(handler))


def event_inputs(*groups: ControlGroup[Any]) -> list[gr.components.Component]:
    """Every component of the groups, in the order of `bind`'s parameters."""
    return list(named_inputs(*groups).values())


# --- schedules ----------------------------------------------------------------------------------------------


class ScheduleControls(ControlGroup[ScheduleValues]):
    """One schedule's controls (family, T, β range, cosine offset, zero terminal SNR), laid out in a column."""

    values = ScheduleValues

    def __init__(self, slot: int, defaults: ScheduleValues) -> None:
        self.slot = slot
        family = gr.Dropdown(FAMILIES, value=defaults.family, label="family", elem_id=f"family{slot}")
        T = gr.Slider(
            MIN_TIMESTEPS, SLIDER_MAX_T, value=defaults.T, step=1, label="T (number of steps)", elem_id=f"T{slot}"
        )
        with gr.Row():
            start = gr.Number(
                defaults.beta_start, label="β start", step=1e-4, minimum=1e-6, maximum=0.999, elem_id=f"bs{slot}"
            )
            end = gr.Number(
                defaults.beta_end, label="β end", step=1e-3, minimum=1e-6, maximum=0.999, elem_id=f"be{slot}"
            )
        self.components = {
            "family": family,
            "T": T,
            "beta_start": start,
            "beta_end": end,
            "cosine_offset": gr.Slider(
                0, 0.5, value=defaults.cosine_offset, step=0.001, label="cosine offset s", elem_id=f"off{slot}"
            ),
            "zero_snr": gr.Checkbox(
                label="zero terminal SNR (rescale so ᾱ_T = 0)", value=defaults.zero_snr, elem_id=f"zsnr{slot}"
            ),
        }

    @property
    def T(self) -> gr.Slider:
        return self.components["T"]

    @property
    def family(self) -> gr.Dropdown:
        return self.components["family"]


# --- runs ---------------------------------------------------------------------------------------------------


class StepControls(ControlGroup[StepValues]):
    """The controls of how each step is taken (laid out by `RunControls`, which builds them)."""

    values = StepValues

    def __init__(self, components: dict[str, gr.components.Component]) -> None:
        self.components = components


def _conditioning_controls(defaults: RunValues) -> tuple[gr.Accordion, dict[str, gr.components.Component]]:
    """The closed box of a conditional or latent model's controls (prompt, negative prompt, guidance scale and
    rescale, class label, latent size), hidden until the model box shows it (`ui.model_box`)."""
    with gr.Accordion(
        "prompt, class label and latent size (conditional and latent models)", open=False, visible=False
    ) as box:
        with gr.Row():
            prompt = gr.Textbox(label="prompt", value=defaults.prompt, elem_id="prompt", scale=3, max_length=1000)
            negative = gr.Textbox(
                label="negative prompt",
                value=defaults.negative_prompt,
                elem_id="negative_prompt",
                scale=2,
                max_length=1000,
            )
        with gr.Row():
            guidance = gr.Slider(
                0,
                20,
                value=defaults.guidance,
                step=0.5,
                label="guidance scale w (0: the model's own)",
                info="w > 1: f_u + w (f_c − f_u); 0 < w ≤ 1 runs the conditional pass alone, as diffusers does",
                elem_id="guidance",
            )
            rescale = gr.Slider(
                0,
                1,
                value=defaults.guidance_rescale,
                step=0.05,
                label="guidance rescale φ (zero-SNR models)",
                elem_id="guidance_rescale",
            )
            label = gr.Slider(
                -1,
                MAX_CLASS_LABEL,
                value=defaults.class_label,
                step=1,
                label="class label (−1: none)",
                elem_id="class_label",
            )
            size = gr.Slider(
                0,
                MAX_LATENT_SIDE,
                value=defaults.latent_size,
                step=8,
                label="latent size (0: the model's own; smaller runs faster on a CPU)",
                elem_id="latent_size",
            )
    controls = {"prompt": prompt, "negative_prompt": negative, "guidance": guidance, "guidance_rescale": rescale}
    return box, {**controls, "class_label": label, "latent_size": size}


class RunControls(ControlGroup[RunValues]):
    """The Run controls in two rows: model, sampler, steps, η; variance, clipping, schedule, spacing, seed, batch.

    The step controls form their own group, `step`, which a branch reads without the run-only ones.
    """

    values = RunValues

    def __init__(self, defaults: RunValues | None = None, step: StepValues | None = None) -> None:
        defaults, step = defaults or RunValues(), step or StepValues()
        choices = model_choices()
        with gr.Row():
            model = gr.Dropdown(
                choices,
                value=defaults.model if defaults.model in choices else choices[0],
                label="model (bundled ones run offline)",
                allow_custom_value=True,
                elem_id="model",
                scale=2,
            )
            typed = gr.Textbox(
                label="or a Hub repo id (a local folder when the app runs on your own machine)",
                placeholder="google/ddpm-cifar10-32",
                elem_id="typed_model",
                scale=2,
            )
            sampler = gr.Radio([k.value for k in SamplerKind], value=step.sampler, label="sampler", elem_id="sampler")
            steps = gr.Slider(1, MAX_STEPS, value=defaults.steps, step=1, label="steps", elem_id="steps")
            eta = gr.Slider(0, 1, value=step.eta, step=0.05, label="η (DDIM)", elem_id="eta")
        with gr.Row():
            variance = gr.Dropdown(
                [c.value for c in VarianceChoice], value=step.variance, label="variance", elem_id="variance"
            )
            clip = gr.Dropdown(
                [c.value for c in Toggle],
                value=step.clip,
                label="clip x̂₀ to [−1, 1]",
                info="model default: the scheduler config's clip_sample, else diffusers' default for its class",
                elem_id="clip",
            )
            schedule_choice = gr.Dropdown(
                [c.value for c in ScheduleChoice],
                value=step.schedule_choice,
                label="sampling schedule",
                elem_id="schedule_choice",
            )
            spacing = gr.Dropdown(
                [s.value for s in TimestepSpacing], value=defaults.spacing, label="spacing", elem_id="spacing"
            )
            seed = gr.Slider(0, 10_000, value=defaults.seed, step=1, label="seed", elem_id="seed")
            batch = gr.Slider(
                1,
                MAX_POINT_BATCH,
                value=defaults.batch,
                step=1,
                label=f"batch (images ≤ {MAX_IMAGE_BATCH}, 2-D points ≤ {MAX_POINT_BATCH})",
                elem_id="batch",
            )
        self.conditioning_box, conditioning = _conditioning_controls(defaults)
        self.components = {
            "model": model,
            "typed": typed,
            "steps": steps,
            "spacing": spacing,
            "seed": seed,
            "batch": batch,
            **conditioning,
        }
        self.step = StepControls(
            {"sampler": sampler, "eta": eta, "variance": variance, "clip": clip, "schedule_choice": schedule_choice}
        )

    def __getitem__(self, name: str) -> gr.components.Component:
        return self.components[name]
