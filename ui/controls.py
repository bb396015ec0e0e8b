"""Control groups: a set of components whose raw values read as one frozen dataclass, parsed in one place.

A view builds its groups inside the Blocks context; an event names the groups it reads, and Gradio passes their
inputs as a set (one dict {component: value}). `bind` turns a handler `handler(*values, request=…, progress=…)`,
whose parameters are these dataclasses, into the function Gradio calls: no handler receives another view's
components by position, and every handler can be called (and tested) with named values.

    group             values              parsed by                 into
    ScheduleControls  ScheduleValues      ScheduleValues.parse      a Schedule
    RunControls       RunValues           parse_run (with the next)  (denoiser, SamplerSettings)
    StepControls      StepValues          StepValues.parse          sampler options a run and a branch share
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import gradio as gr

from explorer.diffusion.conditioning import MAX_GUIDANCE_SCALE, Conditioning
from explorer.diffusion.denoiser import Denoiser
from explorer.diffusion.schedules import (
    DEFAULT_BETA_END,
    DEFAULT_BETA_START,
    MAX_TIMESTEPS,
    MIN_TIMESTEPS,
    BetaSchedule,
    Schedule,
    TimestepSpacing,
    current_scheduler_config,
)
from explorer.diffusion.settings import SamplerKind, SamplerSettings, max_batch_size, resolve_settings
from explorer.diffusion.trajectory import compact_nbytes
from explorer.models.device import pick_device
from explorer.models.latent import LatentDenoiser
from explorer.validation import Mode, check_bool, check_choice, check_float, check_int, check_seed, check_text
from ui import state
from ui.api_names import extras_of, named_event, url_name
from ui.common import user_errors
from ui.models import (
    CONDITIONING_CONTROLS,
    DEFAULT_MODEL,
    check_ref,
    conditioning_controls,
    describe,
    load_model,
    measured_seconds,
    model_choices,
)
from ui.state import MIB

V = TypeVar("V")
MAX_STEPS = 1000
MAX_IMAGE_BATCH = 64
MAX_POINT_BATCH = 1024
SLIDER_MAX_T = 4000
MAX_CLASS_LABEL = 9999  # a DiT's own class count bounds it further
MAX_LATENT_SIDE = 128  # latents of 1024×1024 pictures
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


@dataclass(frozen=True)
class ScheduleValues:
    """Raw values of one schedule's controls."""

    family: str = "linear"
    T: float = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    cosine_offset: float = 0.008
    zero_snr: bool = False

    def parse(self, slot: int = 1) -> Schedule:
        """The schedule these values describe, or ValueError naming the field of schedule `slot`."""
        name = f"schedule {slot}"
        kind = check_choice(f"{name} family", self.family, BetaSchedule)
        count = check_int(f"{name} T", self.T, MIN_TIMESTEPS, MAX_TIMESTEPS)
        start = check_float(f"{name} β start", self.beta_start, 0, 1, low_open=True, high_open=True)
        end = check_float(f"{name} β end", self.beta_end, 0, 1, low_open=True, high_open=True)
        if kind is not BetaSchedule.SQUAREDCOS_CAP_V2 and start > end:
            raise ValueError(f"{name} β start must not exceed β end; got {start:g} > {end:g}")
        offset = check_float(f"{name} cosine offset", self.cosine_offset, 0, 0.5)
        rescale = check_bool(f"{name} zero terminal SNR", self.zero_snr)
        return Schedule.from_name(
            kind, count, beta_start=start, beta_end=end, rescale_zero_terminal_snr=rescale, cosine_offset=offset
        )


def schedule_values_of(config: Mapping[str, Any], name: str = "this model") -> ScheduleValues:
    """The Schedules controls that describe a checkpoint's training schedule (its scheduler_config.json, early
    formats read as diffusers reads them); ValueError when the controls cannot hold it (a table of trained β)."""
    config = current_scheduler_config(config)
    if config.get("trained_betas") is not None:
        raise ValueError(
            f"{name} trains on a table of β values (trained_betas), which the schedule controls cannot hold"
        )
    family = BetaSchedule.parse(config.get("beta_schedule", "linear"), f"{name}'s beta_schedule")
    values = ScheduleValues(
        family=family.value,
        T=int(config.get("num_train_timesteps", 1000)),
        beta_start=float(config.get("beta_start", DEFAULT_BETA_START)),
        beta_end=float(config.get("beta_end", DEFAULT_BETA_END)),
        zero_snr=bool(config.get("rescale_betas_zero_snr", False)),
    )
    values.parse(1)  # the controls' own ranges
    return values


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


class Toggle(Mode, field="clipping"):
    """A setting that defaults to the checkpoint's own value."""

    MODEL = "model default"
    ON = "on"
    OFF = "off"


class VarianceChoice(Mode, field="variance"):
    MODEL = "model default"
    FIXED_SMALL = "fixed_small"
    FIXED_LARGE = "fixed_large"


class ScheduleChoice(Mode, field="sampling schedule"):
    MODEL = "the model's own"
    SCHEDULE_1 = "schedule 1 (Schedules tab)"


@dataclass(frozen=True)
class StepValues:
    """Raw values of the controls a run and a branch share: how each step is taken."""

    sampler: str = "ddpm"
    eta: float = 0.0
    variance: str = VarianceChoice.MODEL.value
    clip: str = Toggle.MODEL.value
    schedule_choice: str = ScheduleChoice.MODEL.value

    def parse(self, schedule: ScheduleValues) -> dict[str, Any]:
        """Keyword options for the sampler; the schedule is checked even when unused. An option left at the
        checkpoint's own setting is absent."""
        kind = check_choice("sampler", self.sampler, SamplerKind)
        which = check_choice("sampling schedule", self.schedule_choice, ScheduleChoice)
        parsed = schedule.parse(1)
        variance = check_choice("variance", self.variance, VarianceChoice)
        clipping = check_choice("clipping", self.clip, Toggle)
        options: dict[str, Any] = {"sampler": kind, "eta": check_float("η", self.eta, 0, 1)}
        if variance is not VarianceChoice.MODEL:
            options["variance"] = variance.value
        if clipping is not Toggle.MODEL:
            options["clip_sample"] = clipping is Toggle.ON
        if which is ScheduleChoice.SCHEDULE_1:
            options["schedule"] = parsed
        return options


@dataclass(frozen=True)
class RunValues:
    """Raw values of the controls only a new run reads: the model, the step count and spacing, seed and batch."""

    model: str = DEFAULT_MODEL
    typed: str = ""
    steps: float = 50
    spacing: str = "leading"
    seed: float = 0
    batch: float = 16
    prompt: str = ""
    negative_prompt: str = ""
    guidance: float = 0  # 0: the model's own default scale (7.5 for Stable Diffusion, 4 for DiT)
    guidance_rescale: float = 0.0
    class_label: float = -1  # −1: none (a DiT then runs its null class alone)
    latent_size: float = 0  # 0: the model's own latent size; else the latent side length (a multiple of 8)

    def conditioning(self) -> Conditioning:
        """The prompt or class label of a conditional model, checked (fields empty or at their "model's own"
        value are None)."""
        guidance = check_float("guidance scale", self.guidance, 0, MAX_GUIDANCE_SCALE)
        label = check_int("class label", self.class_label, -1, MAX_CLASS_LABEL)
        return Conditioning(
            prompt=check_text("prompt", self.prompt) or None,
            negative_prompt=check_text("negative prompt", self.negative_prompt) or None,
            guidance_scale=guidance if guidance > 0 else None,
            guidance_rescale=check_float("guidance rescale", self.guidance_rescale, 0, 1),
            class_label=label if label >= 0 else None,
        )

    def latent_side(self) -> int | None:
        """The latent side length asked for (None: the model's own)."""
        side = check_int("latent size", self.latent_size, 0, MAX_LATENT_SIDE)
        if side and side % 8:
            raise ValueError(f"latent size must be 0 (the model's own) or a multiple of 8 in [8, {MAX_LATENT_SIDE}]")
        return side or None

    @property
    def ref(self) -> str:
        """The model reference: the typed repo id (or local folder) when given, else the chosen name."""
        return (self.typed or "").strip() or self.model


def check_fits(steps: int, batch: int, sample_shape: tuple[int, ...], guided: bool = False) -> None:
    """Refuse, before it starts, a run whose record would not fit a session's budget; say what would fit."""
    budget = state.STORE.max_bytes_per_session
    needs = compact_nbytes(steps, batch, sample_shape, guided)
    if needs <= budget:
        return
    per_step = compact_nbytes(1, batch, sample_shape, guided)
    fitting_steps = max(0, budget // per_step - 1)
    fitting_batch = next(
        (b for b in range(batch, 0, -1) if compact_nbytes(steps, b, sample_shape, guided) <= budget), 0
    )
    options = [f"at most {fitting_steps} steps at batch {batch}"] if fitting_steps else []
    options += [f"batch {fitting_batch} at {steps} steps"] if fitting_batch else []
    raise ValueError(
        f"this run would keep {needs / MIB:.1f} MiB but a session may keep at most {budget / MIB:.0f} MiB: "
        + (" or ".join(options) if options else "use fewer steps and a smaller batch")
        + " would fit"
    )


def check_controls(values: RunValues, step: StepValues, schedule: ScheduleValues) -> dict[str, Any]:
    """Every Run control that can be checked without the model, as sampler options (the model's T and sample
    shape bound steps and batch further in `parse_run`). Loads nothing."""
    options = step.parse(schedule)
    if not isinstance(values.ref, str) or not values.ref:
        raise ValueError("model must be a catalogue name or a Hub repo id such as owner/name")
    check_ref(values.ref)
    check_int("steps", values.steps, 1, MAX_STEPS)
    check_int("batch", values.batch, 1, MAX_POINT_BATCH)
    options["spacing"] = check_choice("spacing", values.spacing, TimestepSpacing)
    options["seed"] = check_seed(values.seed)
    values.conditioning(), values.latent_side()  # checked here too: nothing loads before a bad prompt is refused
    return options


def parse_run(values: RunValues, step: StepValues, schedule: ScheduleValues) -> tuple[Denoiser, SamplerSettings]:
    """The model and the checked settings of a run: every control checked here, once, before anything runs."""
    options = check_controls(values, step, schedule)
    denoiser = bind_model(load_model(values.ref), values)
    total = (options.get("schedule") or denoiser.schedule).num_train_timesteps
    steps = check_int("steps", values.steps, 1, min(total, MAX_STEPS))
    is_image = len(denoiser.sample_shape) == 3
    batch_limit = min(MAX_IMAGE_BATCH, max_batch_size(denoiser.sample_shape)) if is_image else MAX_POINT_BATCH
    batch = check_int("batch", values.batch, 1, batch_limit)
    check_fits(steps, batch, denoiser.sample_shape, is_guided(denoiser))
    return denoiser, resolve_settings(denoiser, num_inference_steps=steps, batch_size=batch, **options)


def is_guided(denoiser: Denoiser) -> bool:
    """Whether a run of this (bound) model records the conditional and unconditional x̂₀ too: classifier-free
    guidance w > 1 of a family that runs it as a second pass (not FLUX dev's embedded guidance)."""
    if not isinstance(denoiser, LatentDenoiser) or not denoiser.kind.conditional:
        return False
    return denoiser.kind.classifier_free and denoiser.guidance_scale > 1.0


def bind_model(denoiser: Denoiser, values: RunValues) -> Denoiser:
    """The model as a run uses it: a conditional model bound to the prompt or class label, a latent model at the
    latent size asked for. Models that take neither ignore those controls (they are hidden for them)."""
    conditioning, side = values.conditioning(), values.latent_side()
    if side is not None and hasattr(denoiser, "resized"):
        denoiser = denoiser.resized(side, side)
    if getattr(denoiser, "conditional", False):
        denoiser = denoiser.condition(conditioning)
    return denoiser


@user_errors
def model_info(model: str, typed: str) -> str:
    """The model box's line about the chosen model (catalogue facts, or the loaded model's, and the measured
    speed); nothing is loaded. A reference that is refused is said in the line itself (see `model_changed`)."""
    values = RunValues(model=check_text("model", model, 200), typed=check_text("typed model", typed, 200))
    if not values.ref:
        return ""
    try:
        device = str(pick_device())
        return describe(values.ref, measured_seconds(values.ref, device), device)
    except ValueError as refusal:  # the user's own text: escaped, never rendered as HTML
        return f"Not loaded: {html.escape(str(refusal))}"


@user_errors
def model_changed(model: str, typed: str) -> list[Any]:
    """After the model box changes: its line (`model_info`), then the conditioning box and each of its controls,
    shown only for models that take them. A refused reference shows nothing but the line that says why: no
    toast, so typing several bad ids in a row piles nothing up (Run refuses it once, by name). Nothing loads."""
    line = model_info(model, typed)
    values = RunValues(model=model, typed=typed)
    try:
        shown = conditioning_controls(values.ref) if values.ref else frozenset()
    except ValueError:
        shown = frozenset()
    return [line, gr.Accordion(visible=bool(shown))] + [
        gr.update(visible=name in shown) for name in CONDITIONING_CONTROLS
    ]


class StepControls(ControlGroup[StepValues]):
    """The controls of how each step is taken (laid out by `RunControls`, which builds them)."""

    values = StepValues

    def __init__(self, components: dict[str, gr.components.Component]) -> None:
        self.components = components


class RunControls(ControlGroup[RunValues]):
    """The Run controls in two rows: model, sampler, steps, η; variance, clipping, schedule, spacing, seed, batch.

    The step controls form their own group, `step`, which a branch reads without the run-only ones.
    """

    values = RunValues

    def __init__(self, defaults: RunValues = RunValues(), step: StepValues = StepValues()) -> None:
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
        with gr.Accordion(
            "prompt, class label and latent size (conditional and latent models)", open=False, visible=False
        ) as self.conditioning_box:
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
        self.components = {
            "model": model,
            "typed": typed,
            "steps": steps,
            "spacing": spacing,
            "seed": seed,
            "batch": batch,
            "prompt": prompt,
            "negative_prompt": negative,
            "guidance": guidance,
            "guidance_rescale": rescale,
            "class_label": label,
            "latent_size": size,
        }
        self.step = StepControls(
            {"sampler": sampler, "eta": eta, "variance": variance, "clip": clip, "schedule_choice": schedule_choice}
        )
        self.info = gr.Markdown(model_info(defaults.model, ""), elem_id="model_info")
        # What `model_changed` updates (a page load that sets the model from a link runs it too: ui.restore)
        self.model_box = [self.info, self.conditioning_box, *(self.components[name] for name in CONDITIONING_CONTROLS)]
        gr.on(
            triggers=[model.change, typed.blur, typed.submit],
            fn=model_changed,
            inputs=[model, typed],
            outputs=self.model_box,
            api_visibility="private",
            show_progress="hidden",
        )

    def __getitem__(self, name: str) -> gr.components.Component:
        return self.components[name]
