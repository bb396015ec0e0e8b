"""Where each frame of a run lands: the noise level of its x_prev, read from the scheduler that makes the step.

A frame is one model call. Its model sees x_t at timestep t_k, and its x_prev lies at the noise level the step
lands on, which is not always the next call's timestep:

    code name         symbol   meaning (per frame k, 0-based timesteps; END_OF_RUN = −1 is the data, ᾱ = 1)
    calls[k]          t_k      the timestep the model is called with (`SamplerSettings.timesteps`)
    starts[k]         t_from   the timestep of the state x_prev is computed from: t_k, or an earlier call's where a
                               step takes several calls (Heun's 2nd call, PNDM's Runge–Kutta and 2nd PLMS calls,
                               DPM-Solver singlestep's higher-order calls)
    prev[k]           s        the timestep x_prev lies at (where ᾱ is off the training grid, the nearest label)
    alpha_call[k]     ᾱ_t      the ᾱ the frame's views (ε̂, x̂₀, v̂) are converted with: 1/(1 + σ_k²) where the
                               scheduler keeps σ (Karras σ included), (1 − σ_k)²/((1 − σ_k)² + σ_k²) for a flow σ
                               (FlowMatchEulerDiscreteScheduler), else ᾱ[t_k] of the training schedule
    alpha_landing[k]  ᾱ_s      the ᾱ of x_prev: 1/(1 + σ_{k+1}²), or ᾱ[s] (ᾱ = 1 at the data, or ᾱ[0] where the
                               scheduler's set_alpha_to_one is false)
    roles[k]          —        why the frame exists besides one call per step ("" for an ordinary step)
    labels[k]         —        the frame's "from → to" where paper t would mislead: a flow scheduler's σ_k → σ_{k+1}
                               and its pipeline timestep (its t_k only index the bound schedule); () elsewhere

The explorer's own samplers land on the next visited timestep. diffusers' DDIM, DDPM and PNDM land on t − T//n
(`scheduling_ddim.py`: prev_timestep = timestep − num_train_timesteps // num_inference_steps), which is the next
visited timestep only under 'leading' spacing; σ schedulers (VP or flow) land on their next σ.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from explorer.diffusion.indexing import paper_t
from explorer.diffusion.schedules import FLOW_SCHEDULERS, flow_alphas_cumprod

END_OF_RUN = -1  # the data x₀ (ᾱ = 1); settings.END_OF_RUN is the same value


@dataclass(frozen=True)
class Landings:
    """Per frame k of a run (tuples of S entries): see the module's table."""

    starts: tuple[int, ...]
    prev: tuple[int, ...]
    alpha_call: tuple[float, ...]
    alpha_landing: tuple[float, ...]
    roles: tuple[str, ...]
    labels: tuple[str, ...] = ()  # per frame, or () where "t = a → b" in paper t says it


def _alpha_at(alphas_cumprod: Sequence[float] | np.ndarray, timestep: int, final: float) -> float:
    """ᾱ at a 0-based timestep; below 0 the scheduler's final ᾱ (1 at the data)."""
    return float(alphas_cumprod[timestep]) if timestep >= 0 else float(final)


def _final_label(final_alpha: float) -> int:
    """The timestep label of a landing below 0: the data where ᾱ = 1, else timestep 0 (ᾱ[0])."""
    return END_OF_RUN if final_alpha == 1.0 else 0


def visited_landings(timesteps: Sequence[int], final_timestep: int, alphas_cumprod: np.ndarray) -> Landings:
    """The explorer's own samplers (DDPM, DDIM): step k lands on the next visited timestep, the last on
    `final_timestep` (END_OF_RUN or 0); ᾱ from the run's schedule."""
    prev = (*tuple(int(t) for t in timesteps[1:]), int(final_timestep))
    return Landings(
        starts=tuple(int(t) for t in timesteps),
        prev=prev,
        alpha_call=tuple(float(alphas_cumprod[t]) for t in timesteps),
        alpha_landing=tuple(_alpha_at(alphas_cumprod, s, 1.0) for s in prev),
        roles=("",) * len(timesteps),
    )


# --- the checkpoint's own diffusers scheduler ------------------------------------------------------------


def _sigma_landings(scheduler: Any, calls: tuple[int, ...]) -> Landings:
    """Schedulers that keep σ (Euler, Heun, LMS, DPM-Solver, UniPC, DEIS): call k runs at σ_k and lands on
    σ_{k+1} (`sigmas` has one entry more than `timesteps`; Heun repeats both for its 2nd call)."""
    sigmas = scheduler.sigmas.detach().cpu().double().numpy()
    count = len(calls)
    alpha = 1.0 / (1.0 + sigmas**2)
    final_sigma = float(sigmas[count])
    prev = (*calls[1:], END_OF_RUN if final_sigma == 0.0 else 0)
    starts, roles = list(calls), [""] * count
    name = type(scheduler).__name__
    if name == "HeunDiscreteScheduler":
        for k in range(count):
            if k % 2:  # 2nd-order call: it finishes the step begun by call k − 1 from that call's state
                starts[k] = begun = calls[k - 1]
                roles[k] = (
                    f"Heun's second model call, at t = {paper_t(calls[k])}, the same t as the next frame's call: "
                    f"it finishes the step from t = {paper_t(begun)}"
                )
            elif k < count - 1:
                roles[k] = "Heun's first model call: x_prev is Euler's provisional step, which the next frame finishes"
    if name == "DPMSolverSinglestepScheduler":
        orders = list(scheduler.order_list)
        for k in range(count):
            order = min(int(orders[k]), k + 1)
            if order > 1:
                starts[k] = calls[k - order + 1]
                roles[k] = (
                    f"DPM-Solver singlestep's order-{order} call: it continues the update from t = {paper_t(starts[k])}"
                )
    return Landings(
        starts=tuple(starts),
        prev=prev,
        alpha_call=tuple(float(a) for a in alpha[:count]),
        alpha_landing=tuple(float(a) for a in alpha[1 : count + 1]),
        roles=tuple(roles),
    )


def _spaced_landings(scheduler: Any, calls: tuple[int, ...], targets: list[int], final_alpha: float) -> Landings:
    """DDIM and DDPM: call k at t_k lands on the scheduler's own previous timestep `targets[k]`, or on the final
    ᾱ where that is below 0."""
    alphas = scheduler.alphas_cumprod.detach().cpu().double().numpy()
    prev = tuple(s if s >= 0 else _final_label(final_alpha) for s in targets)
    landing = tuple(_alpha_at(alphas, s, final_alpha) for s in targets)
    return Landings(calls, prev, tuple(float(alphas[t]) for t in calls), landing, ("",) * len(calls))


def _pndm_landings(scheduler: Any, calls: tuple[int, ...]) -> Landings:
    """PNDM: a dry run of a copy of the scheduler on a zero sample, reading the (from, to) timesteps that its
    step() hands to `_get_prev_sample` at every call: the scheduler's own bookkeeping of Runge–Kutta and PLMS."""
    dry = copy.deepcopy(scheduler)
    seen: list[tuple[int, int]] = []
    own = dry._get_prev_sample

    def spy(sample, timestep, prev_timestep, model_output):
        seen.append((int(timestep), int(prev_timestep)))
        return own(sample, timestep, prev_timestep, model_output)

    dry._get_prev_sample = spy
    zero = torch.zeros(1, 1)
    for t in dry.timesteps:
        dry.step(zero, t, zero)
    final = float(scheduler.final_alpha_cumprod)
    alphas = scheduler.alphas_cumprod.detach().cpu().double().numpy()
    starts = tuple(start for start, _ in seen)
    prev = tuple(s if s >= 0 else _final_label(final) for _, s in seen)
    roles = []
    prk = 0 if scheduler.config.skip_prk_steps else len(scheduler.prk_timesteps)
    for k, (t, (start, _)) in enumerate(zip(calls, seen, strict=True)):
        if k < prk:
            roles.append(f"PNDM's Runge–Kutta call {k % 4 + 1} of 4 for the step from t = {paper_t(start)}")
        elif start != t:
            roles.append(
                f"PNDM's second model call, at t = {paper_t(t)}, the same t as the next frame's call: it finishes "
                f"the step from t = {paper_t(start)}"
            )
        else:
            roles.append("")
    return Landings(
        starts=starts,
        prev=prev,
        alpha_call=tuple(float(alphas[t]) for t in calls),
        alpha_landing=tuple(_alpha_at(alphas, s, final) for _, s in seen),
        roles=tuple(roles),
    )


def flow_landings(scheduler: Any, calls: tuple[int, ...]) -> Landings:
    """FlowMatchEulerDiscreteScheduler: call k runs at the flow σ_k and lands on σ_{k+1} (`sigmas` has one entry
    more than the calls, the last 0: the data); ᾱ is that of equal SNR, (1 − σ)² / ((1 − σ)² + σ²). `calls` are the
    indices of σ_k in the model's schedule bound to the scheduler's σ (`LatentDenoiser.on_sigmas`)."""
    sigmas = scheduler.sigmas.detach().cpu().double().numpy()
    count = len(calls)
    alpha = flow_alphas_cumprod(sigmas)
    final_sigma = float(sigmas[count])
    return Landings(
        starts=tuple(calls),
        prev=(*calls[1:], END_OF_RUN if final_sigma == 0.0 else 0),
        alpha_call=tuple(float(a) for a in alpha[:count]),
        alpha_landing=tuple(float(a) for a in alpha[1 : count + 1]),
        roles=("",) * count,
        labels=tuple(
            f"σ = {here:.3f} → {'0 (data)' if there == 0 else f'{there:.3f}'} (pipeline timestep {float(step):.0f})"
            for here, there, step in zip(
                sigmas[:count], sigmas[1 : count + 1], scheduler.timesteps[:count], strict=True
            )
        ),
    )


def scheduler_landings(scheduler: Any, calls: tuple[int, ...]) -> Landings:
    """Where each call of a diffusers scheduler (with its timesteps set; `calls` = its integer timesteps) lands."""
    name = type(scheduler).__name__
    if name in FLOW_SCHEDULERS:  # before the VP σ schedulers: a flow σ is not √((1 − ᾱ)/ᾱ)
        return flow_landings(scheduler, calls)
    if hasattr(scheduler, "sigmas"):
        return _sigma_landings(scheduler, calls)
    if name == "DDIMScheduler":  # step(): prev_timestep = timestep − num_train_timesteps // num_inference_steps
        stride = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
        targets = [t - stride for t in calls]
        return _spaced_landings(scheduler, calls, targets, float(scheduler.final_alpha_cumprod))
    if name == "DDPMScheduler":  # step(): prev_t = self.previous_timestep(t), ᾱ = 1 below 0
        targets = [int(scheduler.previous_timestep(t)) for t in scheduler.timesteps]
        return _spaced_landings(scheduler, calls, targets, 1.0)
    if name == "PNDMScheduler":
        return _pndm_landings(scheduler, calls)
    raise ValueError(f"the explorer does not know where {name}'s steps land")
