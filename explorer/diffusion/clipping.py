"""Whether a run clips x̂₀, and why: one rule for the checkpoint's own scheduler, the explorer's samplers and the page.

    rule            the checkpoint's scheduler config; where it has no `clip_sample` (or `clip_sample_range`), the
                    default diffusers' class of that config takes (DDPMScheduler, DDIMScheduler: True, range 1);
                    a class that has no such option (PNDM, Euler, DPM-Solver, …, flow matching) never clips

The step and the compact record both follow `SamplerSettings.clip_sample` / `clip_range`, which this rule sets.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from explorer.diffusion.schedules import current_scheduler_config


@dataclass(frozen=True)
class Clipping:
    """Clip x̂₀ to [−clip_range, clip_range] when `clip_sample`; `source` says where the choice came from."""

    clip_sample: bool
    clip_range: float
    source: str


def _diffusers_default(class_name: str, key: str) -> Any:
    """The default of `key` in diffusers' `class_name.__init__` (inspect.Parameter.empty where it has none)."""
    import diffusers

    cls = getattr(diffusers, str(class_name), None)
    if cls is None:
        return inspect.Parameter.empty
    parameter = inspect.signature(cls.__init__).parameters.get(key)
    return inspect.Parameter.empty if parameter is None else parameter.default


def clipping_of(config: Mapping[str, Any]) -> Clipping:
    """The clipping a checkpoint's scheduler config asks for, by the rule above (early-format configs read as
    `current_scheduler_config` reads them)."""
    config = current_scheduler_config(config)
    name = config.get("_class_name")
    if not name:
        return Clipping(bool(config.get("clip_sample", False)), float(config.get("clip_sample_range") or 1.0), "")
    if "clip_sample" in config:
        on = bool(config["clip_sample"])
        source = f"{name}'s config sets clip_sample: {str(on).lower()}"
    else:
        default = _diffusers_default(name, "clip_sample")
        if default is inspect.Parameter.empty:
            on, source = False, f"{name} has no clip_sample option: diffusers never clips x̂₀ there"
        else:
            on = bool(default)
            source = f"{name}'s config has no clip_sample: diffusers' default for {name} is {str(on).lower()}"
    range_ = config.get("clip_sample_range")
    if range_ is None:
        default = _diffusers_default(name, "clip_sample_range")
        range_ = 1.0 if default is inspect.Parameter.empty or default is None else default
    return Clipping(on, float(range_), source)
