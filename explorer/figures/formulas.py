"""Markdown that shows the schedule's formulas with the numbers of one step substituted.

Pure text from a `Schedule` and a paper step t (1..T): the app renders it, tests read it. Equations are display
maths in $$…$$, the only delimiter gr.Markdown renders by default; prose notes use Unicode (a single $ would show
raw).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class PixelValues:
    """One pixel (or one coordinate of a 2-D point) of the Posterior view, and p_θ's guess of its x₀.

    label names it in prose ("pixel 120 (row 7, column 8)"); model names the network whose x̂₀ this is, or is None
    when the view has no network (then x0_hat is None too).
    """

    label: str
    x0: float
    x_t: float
    x0_hat: float | None = None
    model: str | None = None


def posterior_kl(schedule: Schedule, t: int, x0: float, x0_hat: float) -> float:
    """L_{t−1} of one pixel in nats: KL(q(x_{t−1} | x_t, x₀) ‖ p_θ(x_{t−1} | x_t)) for p_θ = N(μ̃_t(x̂₀, x_t), β̃_t).

    Both Gaussians have the variance β̃_t and their means differ only in the x₀ term, so the KL is
    c₀² (x₀ − x̂₀)² / (2 β̃_t) with c₀ the x₀ weight of μ̃_t; x_t drops out. At t = 1 (β̃₁ = 0) both are point
    masses: 0 when x̂₀ = x₀, else ∞.
    """
    i = timestep_of(t)
    variance = float(schedule.posterior_variance[i])
    gap = float(schedule.posterior_mean_coef_x0[i]) * (x0 - x0_hat)
    if variance == 0:
        return 0.0 if gap == 0 else math.inf
    return gap * gap / (2 * variance)


BAYES = [
    r"$$q(x_{t-1} \mid x_t, x_0) = \frac{q(x_t \mid x_{t-1})\; q(x_{t-1} \mid x_0)}{q(x_t \mid x_0)}$$",
    r"$$q(x_t \mid x_{t-1}) = \mathcal{N}\big(\sqrt{\alpha_t}\,x_{t-1},\ \beta_t\big), \quad "
    r"q(x_{t-1} \mid x_0) = \mathcal{N}\big(\sqrt{\bar\alpha_{t-1}}\,x_0,\ 1-\bar\alpha_{t-1}\big), \quad "
    r"q(x_t \mid x_0) = \mathcal{N}\big(\sqrt{\bar\alpha_t}\,x_0,\ 1-\bar\alpha_t\big)$$",
]
SQUARE = [
    r"$$\log q(x_{t-1} \mid x_t, x_0) = -\frac{1}{2}\left[\frac{(x_t - \sqrt{\alpha_t}\,x_{t-1})^2}{\beta_t} "
    r"+ \frac{(x_{t-1} - \sqrt{\bar\alpha_{t-1}}\,x_0)^2}{1-\bar\alpha_{t-1}}\right] + C(x_t, x_0)$$",
    r"$$= -\frac{1}{2}\Big[\underbrace{\Big(\frac{\alpha_t}{\beta_t} + \frac{1}{1-\bar\alpha_{t-1}}\Big)}_{a}"
    r"\,x_{t-1}^2 - 2\,\underbrace{\Big(\frac{\sqrt{\alpha_t}}{\beta_t}\,x_t + "
    r"\frac{\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_{t-1}}\,x_0\Big)}_{b}\,x_{t-1}\Big] + C' "
    r"= -\frac{a}{2}\Big(x_{t-1} - \frac{b}{a}\Big)^2 + C''$$",
    r"$$\frac{1}{\tilde\beta_t} = a = \frac{\alpha_t}{\beta_t} + \frac{1}{1-\bar\alpha_{t-1}} "
    r"= \frac{\alpha_t - \bar\alpha_t + \beta_t}{\beta_t\,(1-\bar\alpha_{t-1})} "
    r"= \frac{1-\bar\alpha_t}{\beta_t\,(1-\bar\alpha_{t-1})} "
    r"\quad\Rightarrow\quad \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t$$",
    r"$$\tilde\mu_t = \frac{b}{a} = \tilde\beta_t\, b = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 "
    r"+ \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t$$",
]
KL_GENERAL = (
    r"$$L_{t-1} = D_{\mathrm{KL}}\big(q(x_{t-1} \mid x_t, x_0)\,\|\,p_\theta(x_{t-1} \mid x_t)\big) "
    r"= \frac{1}{2}\Big[\log\frac{\sigma_t^2}{\tilde\beta_t} + \frac{\tilde\beta_t + (\tilde\mu_t - \mu_\theta)^2}"
    r"{\sigma_t^2} - 1\Big] \;\overset{\sigma_t^2 = \tilde\beta_t}{=}\; \frac{(\tilde\mu_t - \mu_\theta)^2}"
    r"{2\tilde\beta_t} = \frac{c_0^2\,(x_0 - \hat x_0)^2}{2\tilde\beta_t}$$"
)


def _substituted(schedule: Schedule, t: int, pixel: PixelValues) -> list[str]:
    """Step 3: this step's numbers in 1/β̃_t, β̃_t and the pixel's μ̃_t."""
    i, p, n = timestep_of(t), previous_t(t), number
    s = schedule
    beta, alpha, abar_prev, abar = s.betas[i], s.alphas[i], s.alphas_cumprod_prev[i], s.alphas_cumprod[i]
    c0, ct = s.posterior_mean_coef_x0[i], s.posterior_mean_coef_xt[i]
    mean = c0 * pixel.x0 + ct * pixel.x_t
    from_x_t = alpha / beta
    from_prior = math.inf if abar_prev == 1 else 1 / (1 - abar_prev)
    prior_term = r"\frac{1}{0}" if abar_prev == 1 else rf"\frac{{1}}{{1 - {n(abar_prev)}}}"
    lines = [
        rf"$$\beta_{{{t}}} = {n(beta)}, \quad \alpha_{{{t}}} = {n(alpha)}, \quad "
        rf"\bar\alpha_{{{p}}} = {n(abar_prev)}, \quad \bar\alpha_{{{t}}} = {n(abar)}$$",
        rf"$$\frac{{1}}{{\tilde\beta_{{{t}}}}} = \frac{{{n(alpha)}}}{{{n(beta)}}} + {prior_term} = "
        rf"{n(from_x_t)} + {n(from_prior)} = {n(from_x_t + from_prior)} \quad\Rightarrow\quad "
        rf"\tilde\beta_{{{t}}} = {n(s.posterior_variance[i])}$$",
        f"For **{pixel.label}**:",
        rf"$$x_0 = {n(pixel.x0)}, \quad x_{{{t}}} = {n(pixel.x_t)}$$",
        rf"$$\tilde\mu_{{{t}}} = {n(c0)} \cdot x_0 + {n(ct)} \cdot x_{{{t}}} = "
        rf"{n(c0)} \cdot ({n(pixel.x0)}) + {n(ct)} \cdot ({n(pixel.x_t)}) = {n(mean)}$$",
    ]
    if t == 1:
        lines.append(
            "At t = 1, 1 − ᾱ₀ = 0: the prior q(x₀ | x₀) is the point mass δ(y − x₀), so 1/β̃₁ = ∞, β̃₁ = 0 and "
            "μ̃₁ = x₀. The posterior is a point mass at x₀, not a Gaussian of positive width."
        )
    if alpha == 0:
        lines.append(
            f"At t = {t}, α<sub>{t}</sub> = 0 (zero terminal SNR): x<sub>{t}</sub> says nothing about "
            f"x<sub>{p}</sub>, the x<sub>{t}</sub> term drops out, and the posterior is the prior "
            f"q(x<sub>{p}</sub> | x₀)."
        )
    return lines


def _kl_lines(schedule: Schedule, t: int, pixel: PixelValues) -> list[str]:
    """Step 4: L_{t−1} for the pixel, with p_θ's mean from the model's x̂₀ (or a sentence saying there is none)."""
    if pixel.x0_hat is None or pixel.model is None:
        return [
            "No bundled network for this data set is present, so there is no p<sub>θ</sub> to compare with: "
            "L<sub>t−1</sub> is not shown (with x̂₀ = x₀ it would be 0)."
        ]
    i, p, n = timestep_of(t), previous_t(t), number
    c0, ct = schedule.posterior_mean_coef_x0[i], schedule.posterior_mean_coef_xt[i]
    variance = schedule.posterior_variance[i]
    mean = c0 * pixel.x0 + ct * pixel.x_t
    model_mean = c0 * pixel.x0_hat + ct * pixel.x_t
    kl = posterior_kl(schedule, t, pixel.x0, pixel.x0_hat)
    lines = [
        f"p<sub>θ</sub> is the bundled **{pixel.model}** network: p<sub>θ</sub>(x<sub>{p}</sub> | x<sub>{t}</sub>) "
        f"= N(μ<sub>θ</sub>, σ<sub>t</sub>²) with μ<sub>θ</sub> = μ̃<sub>t</sub>(x̂₀, x<sub>{t}</sub>), x̂₀ converted "
        "from its ε̂ at its own step nearest this ᾱ<sub>t</sub> (unclipped), and σ<sub>t</sub>² = β̃<sub>t</sub> "
        "(its fixed_small variance). This is one pixel's term; the whole picture's L<sub>t−1</sub> sums such "
        "terms over its pixels (a 2-D point's over its two coordinates).",
        KL_GENERAL,
        rf"$$\hat x_0 = {n(pixel.x0_hat)}, \quad \mu_\theta = {n(c0)} \cdot ({n(pixel.x0_hat)}) + "
        rf"{n(ct)} \cdot ({n(pixel.x_t)}) = {n(model_mean)}$$",
    ]
    if variance == 0:
        lines.append(
            rf"$$L_{{0}} = D_{{\mathrm{{KL}}}}\big(\delta_{{{n(mean)}}}\,\|\,\delta_{{{n(model_mean)}}}\big) = "
            rf"{n(kl)}$$"
        )
        lines.append(
            "At t = 1 both q and p<sub>θ</sub> are point masses (β̃₁ = σ₁² = 0): their KL is 0 if x̂₀ = x₀ "
            "exactly and infinite otherwise (a point mass against any σ₁ > 0 is infinite too). That is why Ho et "
            "al. (2020) use a decoder term L₀ = −log p<sub>θ</sub>(x₀ | x₁) at t = 1 instead of this KL."
        )
    else:
        gap = c0 * (pixel.x0 - pixel.x0_hat)  # μ̃ − μ_θ from the unrounded values: the x_t terms cancel exactly
        lines.append(
            rf"$$\tilde\mu_{{{t}}} - \mu_\theta = c_0\,(x_0 - \hat x_0) = {n(c0)} \cdot ({n(pixel.x0 - pixel.x0_hat)}) "
            rf"= {n(gap)}$$"
        )
        lines.append(rf"$$L_{{{p}}} = \frac{{({n(gap)})^2}}{{2 \cdot {n(variance)}}} = {n(kl)}\ \text{{nats}}$$")
        lines.append(
            "The difference μ̃ − μ<sub>θ</sub> is computed from the unrounded x₀ and x̂₀: the two means above, "
            "rounded to 4 digits, can agree in every digit shown while their difference still decides the KL."
        )
    return lines


def posterior_derivation(schedule: Schedule, t: int, pixel: PixelValues) -> str:
    """Markdown for the Posterior view's derivation panel at paper step t (1..T) for one pixel.

    Bayes' rule, completing the square in x_{t−1}, then β̃_t and the pixel's μ̃_t with this step's numbers
    substituted (the same numbers the 1-D figure plots), then L_{t−1} = KL(q ‖ p_θ) for the pixel.
    """
    return "\n\n".join(
        [
            "**1. Bayes' rule.** Given x₀, the forward process is Markov, so q(x<sub>t</sub> | x<sub>t−1</sub>, x₀) "
            "= q(x<sub>t</sub> | x<sub>t−1</sub>), and all three factors are Gaussians (per pixel):",
            *BAYES,
            "**2. Completing the square in x<sub>t−1</sub>.** The denominator does not depend on x<sub>t−1</sub>; "
            "collect the quadratic (a) and linear (b) coefficients of the exponent:",
            *SQUARE,
            f"**3. With the numbers of t = {t}** (paper step; ᾱ<sub>t−1</sub> is ᾱ<sub>{previous_t(t)}</sub>):",
            *_substituted(schedule, t, pixel),
            f"**4. The loss term L<sub>{previous_t(t)}</sub> for this pixel.**",
            *_kl_lines(schedule, t, pixel),
        ]
    )
