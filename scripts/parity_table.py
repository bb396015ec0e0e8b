"""Largest disagreement between explorer's schedule tables and diffusers' DDPMScheduler, as a Markdown table.

    python scripts/parity_table.py

Rows: schedule (with and without zero terminal SNR) × quantity; the maximum over T ∈ {2, 10, 1000, 4000}
and every t. "f32" is diffusers as users run it (float32 tables); "f64" is diffusers' own formulas evaluated
in float64 (tests/reference.py). Relative errors for β, β̃ and the coefficients; absolute for ᾱ.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import reference  # noqa: E402

from explorer import Schedule  # noqa: E402


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """Largest relative error where the reference is non-zero; where it is 0, ours must be exactly 0."""
    nonzero = b != 0
    if np.any(a[~nonzero] != 0):
        return float("inf")
    return float(np.max(np.abs(a[nonzero] - b[nonzero]) / np.abs(b[nonzero]), initial=0.0))


def main() -> None:
    header = ["schedule", "zero SNR", "β rel. (f32 / f64)", "ᾱ abs. (f32 / f64)", "β̃ rel., t ≥ 2 (f32 / f64)"]
    print("| " + " | ".join([*header, "μ̃ coefficients rel. (f64)"]) + " |")
    print("|---|---|---|---|---|---|")
    for name in reference.SCHEDULE_NAMES:
        for zero_snr in (False, True):
            worst = np.zeros(7)
            for T in (2, 10, 1000, 4000):
                ours = Schedule.from_name(name, T, rescale_zero_terminal_snr=zero_snr)
                f32 = reference.float32_scheduler(name, T, zero_snr)
                f64 = reference.float64_scheduler(name, T, zero_snr)
                c0, ct = reference.posterior_mean_coefficients(f64)
                errors = [
                    relative(ours.betas, f32.betas.double().numpy()),
                    relative(ours.betas, f64.betas.numpy()),
                    float(np.max(np.abs(ours.alphas_cumprod - f32.alphas_cumprod.double().numpy()))),
                    float(np.max(np.abs(ours.alphas_cumprod - f64.alphas_cumprod.numpy()))),
                    relative(ours.posterior_variance[1:], reference.posterior_variance(f32)[1:]),
                    relative(ours.posterior_variance[1:], reference.posterior_variance(f64)[1:]),
                    max(relative(ours.posterior_mean_coef_x0, c0), relative(ours.posterior_mean_coef_xt, ct)),
                ]
                worst = np.maximum(worst, errors)
            cells = [f"{worst[0]:.1e} / {worst[1]:.1e}", f"{worst[2]:.1e} / {worst[3]:.1e}"]
            cells += [f"{worst[4]:.1e} / {worst[5]:.1e}", f"{worst[6]:.1e}"]
            print(f"| {name} | {'yes' if zero_snr else 'no'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
