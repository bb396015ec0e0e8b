"""Conditioning of a run (prompt or class label, guidance) and the classifier-free guidance maths.

Notation (Ho & Salimans 2022, "Classifier-free diffusion guidance", eq. 6; Lin et al. 2023, "Common diffusion noise
schedules and sample steps are flawed", §3.4 and eq. 15–16):

    code name        symbol     meaning
    conditional      f_c        the model's output given the prompt or class, [B, *shape], in its own space (ε or v)
    unconditional    f_u        the output given the empty prompt (or negative prompt) or the null class
    guidance_scale   w          w > 1: f̂ = f_u + w (f_c − f_u) (two passes); w ≤ 1: f̂ = f_c, the conditional pass
                                alone, whatever w is (diffusers' pipelines guide only when w > 1: w = 0.5 is w = 1)
    guidance_rescale φ          f̂ ← φ · f̂ · σ(f_c)/σ(f̂) + (1 − φ) · f̂, σ the std over each sample's elements

Guidance is applied in the model's own output space, as diffusers' pipelines do (an ε model guides ε̂, a v model v̂).
A conditional model exposes `condition(conditioning) -> Denoiser`; `apply_conditioning` is how `sample` reaches it.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import torch

from explorer.validation import check_float, check_int

OPTIONS = ("prompt", "negative_prompt", "guidance_scale", "guidance_rescale", "class_label")
MAX_PROMPT_CHARACTERS = 1000
MAX_GUIDANCE_SCALE = 100.0


@dataclass(frozen=True)
class Conditioning:
    """What a conditional run is conditioned on. None means the model's own default (guidance_scale: the family's
    default; class_label: the null class, i.e. unconditional)."""

    prompt: str | None = None
    negative_prompt: str | None = None
    guidance_scale: float | None = None
    guidance_rescale: float = 0.0
    class_label: int | None = None

    def __post_init__(self) -> None:
        for field in ("prompt", "negative_prompt"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or len(value) > MAX_PROMPT_CHARACTERS):
                raise ValueError(f"{field} must be a string of at most {MAX_PROMPT_CHARACTERS} characters")
        if self.guidance_scale is not None:
            object.__setattr__(
                self, "guidance_scale", check_float("guidance_scale", self.guidance_scale, 0.0, MAX_GUIDANCE_SCALE)
            )
        object.__setattr__(self, "guidance_rescale", check_float("guidance_rescale", self.guidance_rescale, 0.0, 1.0))
        if self.class_label is not None:
            object.__setattr__(self, "class_label", check_int("class_label", self.class_label, 0, 2**31 - 1))

    def guided(self, default_scale: float) -> bool:
        """True when a step needs the unconditional pass too (w > 1, as diffusers' pipelines decide)."""
        return self.scale(default_scale) > 1.0

    def scale(self, default_scale: float) -> float:
        return float(default_scale if self.guidance_scale is None else self.guidance_scale)


def guide(conditional: torch.Tensor, unconditional: torch.Tensor, scale: float) -> torch.Tensor:
    """f̂ = f_u + w (f_c − f_u), both [B, *shape] in the model's output space. Returns [B, *shape]."""
    if not math.isfinite(scale):
        raise ValueError(f"guidance_scale must be finite; got {scale}")
    return unconditional + scale * (conditional - unconditional)


def rescale_guidance(guided: torch.Tensor, conditional: torch.Tensor, rescale: float) -> torch.Tensor:
    """Lin et al. eq. 15–16 (diffusers' `rescale_noise_cfg`): scale f̂ to the per-sample std of f_c, then mix by φ.

    guided, conditional: [B, *shape]; the std is over every element of a sample (unbiased, as torch.std).
    """
    if rescale == 0.0:
        return guided
    dims = list(range(1, guided.ndim))
    rescaled = guided * (conditional.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True))
    return rescale * rescaled + (1.0 - rescale) * guided


def apply_conditioning(denoiser: Any, options: MutableMapping[str, Any]) -> Any:
    """Pop the conditioning keywords (prompt, negative_prompt, guidance_scale, guidance_rescale, class_label) from
    `options`; when any is given, return `denoiser.condition(Conditioning(...))`, else `denoiser` itself.

    A model without `condition` (an unconditional model) given any of them is a ValueError naming the keyword.
    """
    given = {key: options.pop(key) for key in OPTIONS if key in options}
    given = {key: value for key, value in given.items() if value is not None}
    if not given:
        return denoiser
    if not callable(getattr(denoiser, "condition", None)):
        name = getattr(denoiser, "name", type(denoiser).__name__)
        raise ValueError(f"{', '.join(given)}: {name} is an unconditional model and takes no prompt or class label")
    return denoiser.condition(Conditioning(**given))
