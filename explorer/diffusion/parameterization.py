"""What a network predicts, and exact conversions between ε-, x₀-, v- and flow-prediction.

Notation (x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε; v from Salimans & Ho 2022, "Progressive distillation", §4; the flow velocity
of rectified flow, Liu et al. 2023, at equal SNR, `explorer.diffusion.flow`):

    code name   symbol   meaning
    x_t         x_t      the noisy sample, [B, ...]
    x0          x₀       the clean sample ("sample" in diffusers)
    eps         ε        the noise that made x_t from x₀
    v           v        √ᾱ_t ε − √(1−ᾱ_t) x₀
    u           u        ε − x₀: the flow velocity, d x_σ / dσ on x_σ = (1−σ) x₀ + σ ε ("flow_prediction")
    a           ᾱ_t      a float, or a [B] tensor of per-sample values, in [0, 1]

With a = √ᾱ and b = √(1−ᾱ) the flow point of equal SNR is x_σ = x_t / (a + b) at σ = b / (a + b), so u converts
with x_t alone: x₀ = (x_t − b u)/(a + b), ε = (x_t + a u)/(a + b), v = ((a − b) x_t + u)/(a + b).

Every converter comes with its inverse. Each needs x_t, and each divides by √ᾱ_t or √(1−ᾱ_t)
except the two out of v: x₀ = √ᾱ x_t − √(1−ᾱ) v and ε = √(1−ᾱ) x_t + √ᾱ v are defined everywhere.
A division by zero (ᾱ = 0 for anything derived from ε alone, ᾱ = 1 from x₀ alone) raises ValueError
instead of returning inf. Outputs have the promoted dtype of the inputs, at least float32.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from explorer.diffusion.schedules import FLOW_SCHEDULERS
from explorer.diffusion.tensors import append_dims
from explorer.validation import Mode


class Prediction(Mode, field="prediction type"):
    """What a denoiser outputs; values are diffusers' `prediction_type` strings."""

    EPSILON = "epsilon"
    SAMPLE = "sample"
    V_PREDICTION = "v_prediction"
    FLOW = "flow_prediction"  # diffusers' name for the velocity ε − x₀ (UniPC's and DPM-Solver's use_flow_sigmas)


def prediction_of(scheduler_config: Mapping[str, Any]) -> Prediction:
    """What a checkpoint predicts, from its scheduler config: `prediction_type` (diffusers' default epsilon), or the
    flow velocity for a flow-matching scheduler, whose configs carry no prediction type."""
    if scheduler_config.get("_class_name") in FLOW_SCHEDULERS:
        return Prediction.FLOW
    return Prediction.parse(scheduler_config.get("prediction_type", Prediction.EPSILON))


THREE_SPACES = (Prediction.EPSILON, Prediction.SAMPLE, Prediction.V_PREDICTION)  # ε, x₀, v: what every view shows

AlphaBar = float | torch.Tensor


def _coefficients(a: AlphaBar, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(√ᾱ, √(1−ᾱ)) shaped to broadcast against `like`, in `like`'s dtype (at least float32)."""
    dtype = torch.promote_types(like.dtype, torch.float32)
    a = torch.as_tensor(a, dtype=torch.float64, device=like.device)
    if torch.isnan(a).any() or (a < 0).any() or (a > 1).any():
        raise ValueError("alpha_cumprod (ᾱ_t) must lie in [0, 1]")
    a = append_dims(a, like.ndim)
    return a.sqrt().to(dtype), (1.0 - a).sqrt().to(dtype)


def _refuse_where_zero(scale: torch.Tensor, what: str) -> None:
    if (scale == 0).any():
        raise ValueError(what)


_UNDEFINED_AT_ZERO_SNR = (
    "{target} is undefined where ᾱ_t = 0 (zero terminal SNR at t = T): x_t carries no signal, so an "
    "ε-prediction cannot be turned into x₀ or v there. Use a v- or x₀-prediction model, or start at t < T."
)
_UNDEFINED_AT_ONE = "{target} is undefined where ᾱ_t = 1 (no noise): x_t equals x₀ and ε is not determined"


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """x₀ = (x_t − √(1−ᾱ) ε) / √ᾱ. Inverse of `eps_from_x0`."""
    sa, sb = _coefficients(a, x_t)
    _refuse_where_zero(sa, _UNDEFINED_AT_ZERO_SNR.format(target="x₀"))
    return (x_t - sb * eps) / sa


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """ε = (x_t − √ᾱ x₀) / √(1−ᾱ). Inverse of `x0_from_eps`."""
    sa, sb = _coefficients(a, x_t)
    _refuse_where_zero(sb, _UNDEFINED_AT_ONE.format(target="ε"))
    return (x_t - sa * x0) / sb


def v_from_x0(x_t: torch.Tensor, x0: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """v = (√ᾱ x_t − x₀) / √(1−ᾱ). Inverse of `x0_from_v`."""
    sa, sb = _coefficients(a, x_t)
    _refuse_where_zero(sb, _UNDEFINED_AT_ONE.format(target="v"))
    return (sa * x_t - x0) / sb


def x0_from_v(x_t: torch.Tensor, v: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """x₀ = √ᾱ x_t − √(1−ᾱ) v. Inverse of `v_from_x0`."""
    sa, sb = _coefficients(a, x_t)
    return sa * x_t - sb * v


def v_from_eps(x_t: torch.Tensor, eps: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """v = (ε − √(1−ᾱ) x_t) / √ᾱ. Inverse of `eps_from_v`."""
    sa, sb = _coefficients(a, x_t)
    _refuse_where_zero(sa, _UNDEFINED_AT_ZERO_SNR.format(target="v"))
    return (eps - sb * x_t) / sa


def eps_from_v(x_t: torch.Tensor, v: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """ε = √(1−ᾱ) x_t + √ᾱ v. Inverse of `v_from_eps`."""
    sa, sb = _coefficients(a, x_t)
    return sb * x_t + sa * v


def v_from_x0_eps(x0: torch.Tensor, eps: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """v = √ᾱ ε − √(1−ᾱ) x₀: the v-prediction target when both x₀ and ε are known (training)."""
    sa, sb = _coefficients(a, x0)
    return sa * eps - sb * x0


def _flow_coefficients(a: AlphaBar, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _coefficients(a, like)  # (a, b) = (√ᾱ, √(1−ᾱ)); a + b ≥ 1, so x_σ = x_t/(a + b) is always defined


def x0_from_flow(x_t: torch.Tensor, u: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """x₀ = (x_t − √(1−ᾱ) u) / (√ᾱ + √(1−ᾱ)). Inverse of `flow_from_x0`."""
    sa, sb = _flow_coefficients(a, x_t)
    return (x_t - sb * u) / (sa + sb)


def flow_from_x0(x_t: torch.Tensor, x0: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """u = (x_t − (√ᾱ + √(1−ᾱ)) x₀) / √(1−ᾱ). Inverse of `x0_from_flow`."""
    sa, sb = _flow_coefficients(a, x_t)
    _refuse_where_zero(sb, _UNDEFINED_AT_ONE.format(target="the flow velocity u"))
    return (x_t - (sa + sb) * x0) / sb


def eps_from_flow(x_t: torch.Tensor, u: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """ε = (x_t + √ᾱ u) / (√ᾱ + √(1−ᾱ)). Inverse of `flow_from_eps`."""
    sa, sb = _flow_coefficients(a, x_t)
    return (x_t + sa * u) / (sa + sb)


def flow_from_eps(x_t: torch.Tensor, eps: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """u = ((√ᾱ + √(1−ᾱ)) ε − x_t) / √ᾱ. Inverse of `eps_from_flow`."""
    sa, sb = _flow_coefficients(a, x_t)
    _refuse_where_zero(sa, _UNDEFINED_AT_ZERO_SNR.format(target="the flow velocity u"))
    return ((sa + sb) * eps - x_t) / sa


def v_from_flow(x_t: torch.Tensor, u: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """v = ((√ᾱ − √(1−ᾱ)) x_t + u) / (√ᾱ + √(1−ᾱ)). Inverse of `flow_from_v`."""
    sa, sb = _flow_coefficients(a, x_t)
    return ((sa - sb) * x_t + u) / (sa + sb)


def flow_from_v(x_t: torch.Tensor, v: torch.Tensor, a: AlphaBar) -> torch.Tensor:
    """u = (√ᾱ + √(1−ᾱ)) v − (√ᾱ − √(1−ᾱ)) x_t. Inverse of `v_from_flow`; defined everywhere."""
    sa, sb = _flow_coefficients(a, x_t)
    return (sa + sb) * v - (sa - sb) * x_t


Converter = Callable[[torch.Tensor, torch.Tensor, AlphaBar], torch.Tensor]

_CONVERTERS: dict[tuple[Prediction, Prediction], Converter] = {
    (Prediction.EPSILON, Prediction.SAMPLE): x0_from_eps,
    (Prediction.SAMPLE, Prediction.EPSILON): eps_from_x0,
    (Prediction.SAMPLE, Prediction.V_PREDICTION): v_from_x0,
    (Prediction.V_PREDICTION, Prediction.SAMPLE): x0_from_v,
    (Prediction.EPSILON, Prediction.V_PREDICTION): v_from_eps,
    (Prediction.V_PREDICTION, Prediction.EPSILON): eps_from_v,
    (Prediction.FLOW, Prediction.SAMPLE): x0_from_flow,
    (Prediction.SAMPLE, Prediction.FLOW): flow_from_x0,
    (Prediction.FLOW, Prediction.EPSILON): eps_from_flow,
    (Prediction.EPSILON, Prediction.FLOW): flow_from_eps,
    (Prediction.FLOW, Prediction.V_PREDICTION): v_from_flow,
    (Prediction.V_PREDICTION, Prediction.FLOW): flow_from_v,
}


def convert(
    output: torch.Tensor,
    source: str | Prediction,
    target: str | Prediction,
    x_t: torch.Tensor,
    alpha_cumprod: AlphaBar,
) -> torch.Tensor:
    """Turn a prediction of kind `source` at x_t into the equivalent prediction of kind `target`.

    output, x_t: [B, ...]; alpha_cumprod: ᾱ_t as a float or a [B] tensor of per-sample values.
    Returns [B, ...] in the promoted dtype (at least float32); a copy even when source == target.
    """
    source, target = Prediction.parse(source), Prediction.parse(target)
    if output.shape != x_t.shape:
        raise ValueError(f"output {tuple(output.shape)} and x_t {tuple(x_t.shape)} must have the same shape")
    if source is target:
        return output.to(torch.promote_types(output.dtype, torch.float32), copy=True)
    return _CONVERTERS[(source, target)](x_t, output, alpha_cumprod)
