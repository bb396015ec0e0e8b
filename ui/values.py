"""The raw values of the control groups (`ui.controls`), each a frozen dataclass parsed in one place; Gradio-free.

values          parsed by                    into
ScheduleValues  ScheduleValues.parse         a Schedule
StepValues      StepValues.parse             sampler options a run and a branch share
RunValues       conditioning, latent_side    the model reference, its conditioning and latent size
                (`ui.runs.plan_run` checks the rest against the loaded model)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from explorer.diffusion.conditioning import MAX_GUIDANCE_SCALE, Conditioning
from explorer.diffusion.schedules import (
    DEFAULT_BETA_END,
    DEFAULT_BETA_START,
    MAX_TIMESTEPS,
    MIN_TIMESTEPS,
    BetaSchedule,
    Schedule,
    current_scheduler_config,
)
from explorer.diffusion.settings import SamplerKind
from explorer.validation import Mode, check_bool, check_choice, check_float, check_int, check_text
from ui.models import DEFAULT_MODEL

MAX_STEPS = 1000
MAX_IMAGE_BATCH = 64
MAX_POINT_BATCH = 1024
MAX_CLASS_LABEL = 9999  # a DiT's own class count bounds it further
MAX_LATENT_SIDE = 128  # latents of 1024×1024 pictures


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
