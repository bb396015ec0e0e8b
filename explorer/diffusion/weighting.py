"""What each parameterization's loss weighs: its target's size and the weight it puts on the x₀ error.

A network that predicts ε, x₀, v or the flow velocity u from the same x_t holds the same information: every
prediction converts exactly into x̂₀, and its squared error is a fixed multiple of ‖x₀ − x̂₀‖². Plain MSE on a
target is therefore MSE on x₀ with a weight that depends on t (Salimans & Ho 2022, §4; Hang et al. 2023 for
min-SNR-γ; Lipman et al. 2023 and Liu et al. 2023 for the flow velocity).

Notation (variance-preserving: x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε; all arrays float64, one value per t):

    code name          symbol        equation
    snr                SNR_t         ᾱ_t / (1 − ᾱ_t)
    flow_sigma(snr)    σ             1 / (1 + √SNR): the noise share of the flow path x = (1 − σ) x₀ + σ ε
                                     at the same SNR ((1 − σ)² / σ² = SNR); that x is the VP x_t / (√ᾱ + √(1−ᾱ))
    flow_velocity      u             ε − x₀ = dx/dσ along that path; x₀ = x − σ u
    implied_weight     w_t           ‖target − target̂‖² = w_t ‖x₀ − x̂₀‖², exactly, for any prediction:
                                       ε: w = SNR           (ε − ε̂ = −√SNR (x₀ − x̂₀))
                                       x₀: w = 1
                                       v: w = 1 + SNR       (v − v̂ = −(x₀ − x̂₀) / √(1 − ᾱ))
                                       u: w = 1 / σ² = (1 + √SNR)²   (u − û = −(x₀ − x̂₀) / σ)
    min_snr_weight     w_t           min(SNR_t, γ): the weight min-SNR-γ puts on ‖x₀ − x̂₀‖² (its loss on a target is
                                     that target's MSE × min(SNR, γ) / implied_weight)
    m2                 E‖x₀‖²/D      the data's mean square per dimension
    target_rms         RMS           closed forms when ε ~ N(0, I) is independent of x₀:
                                       ε: 1;  x₀: √m2;  v: √(ᾱ + (1 − ᾱ) m2);  u: √(1 + m2)

Where SNR = 0 (ᾱ_T = 0, zero terminal SNR) every weight is finite; where SNR = ∞ (ᾱ = 1, no noise) only the x₀
weight is, and the others are inf (an error there is not recoverable from x₀'s).
"""

from __future__ import annotations

import numpy as np
import torch

from explorer.diffusion.parameterization import Prediction


def _snr(snr: np.ndarray | float) -> np.ndarray:
    values = np.asarray(snr, dtype=np.float64)
    if np.isnan(values).any() or (values < 0).any():
        raise ValueError("SNR must be a number ≥ 0 (inf allowed for ᾱ = 1)")
    return values


def flow_sigma(snr: np.ndarray | float) -> np.ndarray:
    """σ = 1 / (1 + √SNR): the noise share of the flow path x = (1 − σ) x₀ + σ ε with the same SNR, float64."""
    return 1.0 / (1.0 + np.sqrt(_snr(snr)))


def flow_velocity(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """u = ε − x₀: the flow-matching target (any shape; x0 and eps alike)."""
    if x0.shape != eps.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and eps {tuple(eps.shape)} must have the same shape")
    return eps - x0


def implied_weight(target: str | Prediction, snr: np.ndarray | float) -> np.ndarray:
    """w_t with ‖target − target̂‖² = w_t ‖x₀ − x̂₀‖² (see the notation table), float64 like `snr`."""
    target = Prediction.parse(target)
    snr = _snr(snr)
    with np.errstate(over="ignore"):
        if target is Prediction.EPSILON:
            return snr.copy()
        if target is Prediction.SAMPLE:
            return np.ones_like(snr)
        if target is Prediction.V_PREDICTION:
            return 1.0 + snr
        return (1.0 + np.sqrt(snr)) ** 2


def min_snr_weight(snr: np.ndarray | float, gamma: float) -> np.ndarray:
    """min(SNR_t, γ): min-SNR-γ's weight on ‖x₀ − x̂₀‖² (Hang et al. 2023), float64 like `snr`."""
    if not np.isfinite(gamma) or gamma <= 0:
        raise ValueError(f"snr gamma (γ) must be a finite number > 0; got {gamma}")
    return np.minimum(_snr(snr), float(gamma))


def target_rms(target: str | Prediction, alpha_cumprod: np.ndarray | float, m2: float) -> np.ndarray:
    """The expected RMS per dimension of a target at ᾱ_t, for data of mean square `m2` (closed forms above)."""
    target = Prediction.parse(target)
    a = np.asarray(alpha_cumprod, dtype=np.float64)
    if np.isnan(a).any() or (a < 0).any() or (a > 1).any():
        raise ValueError("alpha_cumprod (ᾱ_t) must lie in [0, 1]")
    if not np.isfinite(m2) or m2 < 0:
        raise ValueError(f"the data's mean square m2 must be a finite number ≥ 0; got {m2}")
    if target is Prediction.EPSILON:
        return np.ones_like(a)
    if target is Prediction.SAMPLE:
        return np.full_like(a, np.sqrt(m2))
    if target is Prediction.V_PREDICTION:
        return np.sqrt(a + (1.0 - a) * m2)
    return np.full_like(a, np.sqrt(1.0 + m2))
