"""One noise level across schedules: each model's own timestep whose log-SNR is nearest a target's.

Two schedules (linear and cosine, a VP model and a flow model at equal SNR, T = 1000 and T = 4000) put different
noise at the same timestep number; what is comparable is the noise level itself. Notation:

    code name        symbol                 meaning
    target[k]        λ_k = log SNR          the level to match (natural log of ᾱ/(1 − ᾱ)), [S]; −inf is pure noise
    schedule.log_snr λ(t)                   the model's own levels, one per 0-based timestep t, decreasing in t
    timesteps[k]     t_k = argmin |λ(t) − λ_k|   the model's own timestep nearest the target (models take integers)
    gap[k]           |λ(t_k) − λ_k|         how far that is; above `tolerance` there is no common level: −1 and NaN

A gap of 0.5 is a factor e^0.5 ≈ 1.65 in SNR. Where a model's x_t is drawn at its own ᾱ(t_k) (teacher forcing on
known x₀), every model is scored exactly at its own level, and the gap only says how far apart the levels compared
are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from explorer.diffusion.indexing import paper_t
from explorer.diffusion.schedules import Schedule

LOG_SNR_TOLERANCE = 0.5  # largest |Δ log SNR| between levels that count as the same (a factor e^0.5 in SNR)
UNMATCHED = -1  # timestep of a target the model has no level for


@dataclass(frozen=True)
class LevelMatch:
    """One schedule's own timesteps at the target levels: [S] each, in the targets' order."""

    timesteps: np.ndarray  # int64: the nearest own 0-based timestep, UNMATCHED (−1) where the gap is too large
    alphas_cumprod: np.ndarray  # float64: ᾱ there, NaN where unmatched
    gap: np.ndarray  # float64: |λ(t_k) − λ_k| of the nearest timestep (also where unmatched)
    tolerance: float

    @property
    def matched(self) -> np.ndarray:
        """bool [S]: where a common noise level exists."""
        return self.timesteps != UNMATCHED

    def refusal(self, name: str, reference_timesteps: Sequence[int] | np.ndarray) -> str | None:
        """A sentence naming the reference steps (paper t) `name` has no common noise level for, or None."""
        missing = np.flatnonzero(~self.matched)
        if missing.size == 0:
            return None
        shown = ", ".join(str(int(paper_t(int(reference_timesteps[k])))) for k in missing[:6])
        more = f" and {missing.size - 6} more" if missing.size > 6 else ""
        return (
            f"{name} has no noise level within {self.tolerance:g} in log SNR of t = {shown}{more} (the first model's "
            f"schedule): its schedule never reaches that level (nearest gap {float(self.gap[missing].min()):.3g}), "
            "so it is not compared there (NaN)."
        )


def match_log_snr(
    schedule: Schedule, target: Sequence[float] | np.ndarray, tolerance: float = LOG_SNR_TOLERANCE
) -> LevelMatch:
    """For each target log SNR ([S], −inf allowed), the schedule's own timestep of nearest log SNR.

    Equal values (−inf included: two zero-terminal-SNR schedules at t = T) match with gap 0.
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a number ≥ 0; got {tolerance}")
    levels = np.asarray(schedule.log_snr, dtype=np.float64)  # [T]
    wanted = np.asarray(target, dtype=np.float64).reshape(-1)  # [S]
    if np.isnan(wanted).any():
        raise ValueError("target log SNR must not be NaN")
    with np.errstate(invalid="ignore"):
        distance = np.abs(levels[None, :] - wanted[:, None])  # [S, T]; inf − inf is NaN
    distance = np.where(levels[None, :] == wanted[:, None], 0.0, distance)
    distance = np.where(np.isnan(distance), np.inf, distance)
    nearest = distance.argmin(axis=1)  # [S]
    gap = distance[np.arange(wanted.size), nearest]
    matched = gap <= tolerance
    timesteps = np.where(matched, nearest, UNMATCHED).astype(np.int64)
    alphas = np.where(matched, schedule.alphas_cumprod[nearest], np.nan)
    return LevelMatch(timesteps, alphas, gap, float(tolerance))
