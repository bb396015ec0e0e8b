"""Markdown that shows the schedule's formulas with the numbers of one step substituted.

Pure text from a `Schedule` and a paper step t (1..T): the app renders it, tests read it. Equations are display
maths in $$…$$, the only delimiter gr.Markdown renders by default; prose notes use Unicode (a single $ would show
raw).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from explorer.diffusion.indexing import paper_t, previous_t, timestep_of
from explorer.diffusion.schedules import Schedule


def number(value: float) -> str:
    """A compact number for formulas: 4 significant digits, scientific notation when tiny or huge."""
    if not math.isfinite(value):
        return r"-\infty" if value < 0 else r"\infty"
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    mantissa, exponent = f"{value:.3e}".split("e")
    return rf"{mantissa} \times 10^{{{int(exponent)}}}"


def step_formulas(schedule: Schedule, t: int) -> str:
    """Every quantity at paper step t, as display equations with the numbers substituted."""
    i, p = timestep_of(t), previous_t(t)
    s = schedule
    beta, alpha = s.betas[i], s.alphas[i]
    abar, abar_prev = s.alphas_cumprod[i], s.alphas_cumprod_prev[i]
    one_minus, one_minus_prev = s.one_minus_alphas_cumprod[i], 1.0 - abar_prev
    n = number
    lines = [
        f"**At t = {t}** (paper step, 1..{s.num_train_timesteps}; code index {i}):",
        rf"$$\beta_{{{t}}} = {n(beta)}, \qquad \alpha_{{{t}}} = 1 - \beta_{{{t}}} = {n(alpha)}$$",
        rf"$$\bar\alpha_{{{t}}} = \prod_{{s=1}}^{{{t}}} \alpha_s = {n(abar)}, \qquad "
        rf"\sqrt{{\bar\alpha_{{{t}}}}} = {n(math.sqrt(abar))}, \qquad "
        rf"\sqrt{{1-\bar\alpha_{{{t}}}}} = {n(math.sqrt(one_minus))}$$",
        rf"$$\mathrm{{SNR}}_{{{t}}} = \frac{{\bar\alpha_{{{t}}}}}{{1-\bar\alpha_{{{t}}}}} = "
        rf"\frac{{{n(abar)}}}{{{n(one_minus)}}} = {n(s.snr[i])}, \qquad "
        rf"\log \mathrm{{SNR}}_{{{t}}} = {n(s.log_snr[i])}$$",
        rf"$$\tilde\beta_{{{t}}} = \frac{{1-\bar\alpha_{{{p}}}}}{{1-\bar\alpha_{{{t}}}}}\,\beta_{{{t}}} = "
        rf"\frac{{{n(one_minus_prev)}}}{{{n(one_minus)}}} \cdot {n(beta)} = {n(s.posterior_variance[i])}$$",
        rf"$$\tilde\mu_{{{t}}} = \underbrace{{\frac{{\sqrt{{\bar\alpha_{{{p}}}}}\,\beta_{{{t}}}}}"
        rf"{{1-\bar\alpha_{{{t}}}}}}}_{{{n(s.posterior_mean_coef_x0[i])}}}\, x_0 + "
        rf"\underbrace{{\frac{{\sqrt{{\alpha_{{{t}}}}}\,(1-\bar\alpha_{{{p}}})}}{{1-\bar\alpha_{{{t}}}}}}}"
        rf"_{{{n(s.posterior_mean_coef_xt[i])}}}\, x_{{{t}}}$$",
    ]
    if t == 1:
        lines.append("At t = 1, β̃₁ = 0 exactly (ᾱ₀ = 1): its log is clipped to t = 2's.")
    if s.terminal_snr_is_zero and t == s.num_train_timesteps:
        lines.append(
            "Zero terminal SNR by construction (β<sub>T</sub> = 1, so ᾱ<sub>T</sub> = 0 exactly and "
            "log SNR<sub>T</sub> = −∞): x̂₀ from an ε-prediction is undefined here."
        )
    elif abar == 0.0:
        log_snr = f"{s.log_snr[i]:.1f}".replace("-", "−")
        lines.append(
            f"ᾱ<sub>{t}</sub> underflows to 0 in float64: log SNR<sub>{t}</sub> = {log_snr} is finite, "
            "but SNR is below float64's range (its smallest number is about 4.9 × 10⁻³²⁴ = e<sup>−744.4</sup>). "
            "This is not zero terminal SNR (β<sub>T</sub> < 1), though x̂₀ from an ε-prediction cannot be computed "
            "in float64 here either."
        )
    return "\n\n".join(lines)


def step_table(schedules: Sequence[tuple[str, Schedule]], t: int) -> str:
    """A Markdown table of every quantity at paper step t for each schedule ("—" past its T)."""
    rows = [
        ("β_t", "betas"),
        ("β̃_t", "posterior_variance"),
        ("ᾱ_t", "alphas_cumprod"),
        ("√ᾱ_t", "sqrt_alphas_cumprod"),
        ("√(1−ᾱ_t)", "sqrt_one_minus_alphas_cumprod"),
        ("SNR_t", "snr"),
        ("log SNR_t", "log_snr"),
        ("weight of x₀ in μ̃", "posterior_mean_coef_x0"),
        ("weight of x_t in μ̃", "posterior_mean_coef_xt"),
    ]
    header = "| quantity at t = " + str(t) + " | " + " | ".join(label for label, _ in schedules) + " |"
    lines = [header, "|---" * (len(schedules) + 1) + "|"]
    for symbol, attribute in rows:
        cells = []
        for _, schedule in schedules:
            if t > schedule.num_train_timesteps:
                cells.append("—")
            else:
                cells.append(f"{float(getattr(schedule, attribute)[timestep_of(t)]):.5g}")
        lines.append(f"| {symbol} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spacing_table(schedule: Schedule, visited: Mapping[str, np.ndarray]) -> str:
    """Markdown: for each spacing, the first and last paper t it visits and the SNR at the first one."""
    lines = [
        "| spacing | steps | first t | SNR at first t | last t |",
        "|---|---|---|---|---|",
    ]
    for spacing, steps in visited.items():
        first, last = int(steps[0]), int(steps[-1])
        lines.append(f"| {spacing} | {len(steps)} | {paper_t(first)} | {schedule.snr[first]:.3g} | {paper_t(last)} |")
    return "\n".join(lines)
