"""diffusers as the reference implementation: its schedulers' tables and step coefficients.

diffusers keeps β and ᾱ in float32, so two flavours are offered: `float32_scheduler` is diffusers exactly
as users run it; `float64_scheduler` is the same object with its β (computed by diffusers, or by its own
zero-SNR function applied in float64) and every derived table recomputed by diffusers' own formulas in
float64, to compare where float32 arithmetic cancels (1 − ᾱ_t near t = 1, the zero-SNR rescale).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.schedulers import scheduling_ddpm
from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr

SCHEDULE_NAMES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")


def float32_scheduler(name: str, num_train_timesteps: int, zero_snr: bool, **config) -> DDPMScheduler:
    config.setdefault("clip_sample", False)
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps, beta_schedule=name, rescale_betas_zero_snr=zero_snr, **config
    )


def diffusers_betas_float64(name: str, num_train_timesteps: int, zero_snr: bool) -> torch.Tensor:
    """diffusers' β for a named schedule, each formula evaluated in float64 (its own code where it has one)."""
    T, start, end = num_train_timesteps, 1e-4, 0.02
    if name == "linear":
        betas = torch.linspace(start, end, T, dtype=torch.float64)
    elif name == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, T, dtype=torch.float64) ** 2
    elif name == "squaredcos_cap_v2":
        # diffusers' `betas_for_alpha_bar` works in Python floats and casts to float32 at the end;
        # the same formula without that cast:
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        values = [min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), 0.999) for i in range(T)]
        betas = torch.tensor(values, dtype=torch.float64)
    elif name == "sigmoid":
        betas = torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float64)) * (end - start) + start
    else:
        raise ValueError(name)
    return rescale_zero_terminal_snr(betas) if zero_snr else betas


def float64_scheduler(name: str, num_train_timesteps: int, zero_snr: bool, **config) -> DDPMScheduler:
    """diffusers' DDPMScheduler with every table recomputed by its own formulas in float64."""
    scheduler = float32_scheduler(name, num_train_timesteps, zero_snr, **config)
    scheduler.betas = diffusers_betas_float64(name, num_train_timesteps, zero_snr)
    scheduler.alphas = 1.0 - scheduler.betas
    scheduler.alphas_cumprod = torch.cumprod(scheduler.alphas, dim=0)
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    return scheduler


def posterior_variance(scheduler: DDPMScheduler) -> np.ndarray:
    """β̃_t from diffusers' `_get_variance` (fixed_small) at every t, before its clamp at 1e-20 matters."""
    return np.array(
        [float(scheduler._get_variance(t, variance_type="fixed_small")) for t in range(len(scheduler.betas))]
    )


def posterior_mean_coefficients(scheduler: DDPMScheduler) -> tuple[np.ndarray, np.ndarray]:
    """(c₀, c_t) read off `DDPMScheduler.step` itself: with x̂₀ = 1, x_t = 0 it returns c₀; with 0, 1 it returns
    c_t. Its noise is set to zero so the step returns the posterior mean."""
    dtype = scheduler.betas.dtype
    scheduler.register_to_config(prediction_type="sample", clip_sample=False)
    x0 = torch.tensor([[1.0], [0.0]], dtype=dtype)  # [2, 1]
    x_t = torch.tensor([[0.0], [1.0]], dtype=dtype)
    original = scheduling_ddpm.randn_tensor
    scheduling_ddpm.randn_tensor = lambda shape, **kw: torch.zeros(shape, dtype=kw.get("dtype"))
    try:
        rows = [scheduler.step(x0, t, x_t).prev_sample[:, 0] for t in range(len(scheduler.betas))]
    finally:
        scheduling_ddpm.randn_tensor = original
    table = torch.stack(rows).double().numpy()  # [T, 2]
    return table[:, 0], table[:, 1]


def ddim_scheduler(name: str, num_train_timesteps: int, zero_snr: bool, **config) -> DDIMScheduler:
    config.setdefault("clip_sample", False)
    return DDIMScheduler(
        num_train_timesteps=num_train_timesteps, beta_schedule=name, rescale_betas_zero_snr=zero_snr, **config
    )
