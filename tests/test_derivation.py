"""The Posterior view's derivation panel: the numbers it substitutes are the maths, the plot's and the model's.

Every number is read back from the rendered Markdown (4 significant digits) and compared with an independent
computation: q_posterior for μ̃ and β̃, the identity 1/β̃ = α/β + 1/(1−ᾱ_{t−1}), and torch's Gaussian KL.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from app_fixtures import CHROMIUM, ensure_models

from explorer import Schedule, timestep_of
from explorer.data import example_digit
from explorer.diffusion.denoiser import x0_at_noise_level
from explorer.diffusion.posterior import q_posterior, q_sample
from explorer.figures.formulas import PixelValues, posterior_derivation, posterior_kl

NUMBER = r"-?\\infty|-?\d+(?:\.\d+)?(?: \\times 10\^\{-?\d+\})?"
SCHEDULES = {
    "linear": Schedule.from_name("linear", 1000),
    "cosine": Schedule.from_name("cosine", 1000),
    "zero SNR": Schedule.from_name("linear", 1000, rescale_zero_terminal_snr=True),
    "T = 2": Schedule.from_name("linear", 2),
    "underflow": Schedule.from_name("linear", 1000, beta_end=0.999),
}
CASES = [
    (name, t)
    for name, steps in (
        ("linear", (1, 2, 200, 1000)),
        ("cosine", (1, 999, 1000)),
        ("zero SNR", (1, 999, 1000)),
        ("T = 2", (1, 2)),
        ("underflow", (1000,)),
    )
    for t in steps
]
PIXEL = PixelValues("pixel 5 (row 0, column 5)", x0=0.3, x_t=-0.5, x0_hat=0.1, model="digits-eps")


def value(text: str) -> float:
    """A number as `formulas.number` writes it."""
    if text.endswith(r"\infty"):
        return -math.inf if text.startswith("-") else math.inf
    mantissa, _, exponent = text.partition(r" \times 10^{")
    return float(mantissa) * (10 ** int(exponent.rstrip("}")) if exponent else 1)


def find(literal: str, markdown: str) -> list[float]:
    """The numbers at the (N)s of `literal` (plain text; … stands for any text), from its first match."""
    parts = [re.escape(part) for part in re.split(r"(\(N\)|…)", literal)]
    pattern = "".join({re.escape("(N)"): f"({NUMBER})", re.escape("…"): ".*?"}.get(part, part) for part in parts)
    match = re.search(pattern, markdown)
    assert match, f"{literal!r} not in the derivation"
    return [value(group) for group in match.groups()]


def close(shown: float, exact: float) -> bool:
    """Equal to 4 significant digits (what the panel prints)."""
    if math.isinf(exact):
        return shown == exact
    return shown == pytest.approx(exact, rel=6e-4, abs=1e-300)


@pytest.mark.parametrize(("name", "t"), CASES)
def test_substituted_numbers_are_the_posterior(name, t):
    schedule = SCHEDULES[name]
    i, p = timestep_of(t), t - 1
    markdown = posterior_derivation(schedule, t, PIXEL)
    x0, x_t = torch.tensor([[PIXEL.x0]], dtype=torch.float64), torch.tensor([[PIXEL.x_t]], dtype=torch.float64)
    q = q_posterior(schedule, x0, x_t, i)
    beta, alpha, abar_prev = schedule.betas[i], schedule.alphas[i], schedule.alphas_cumprod_prev[i]

    shown_beta, shown_alpha, shown_prev = find(
        rf"\beta_{{{t}}} = (N), \quad \alpha_{{{t}}} = (N), \quad \bar\alpha_{{{p}}} = (N)",
        markdown,
    )
    assert close(shown_beta, beta) and close(shown_alpha, alpha) and close(shown_prev, abar_prev)
    # 1/β̃ = α/β + 1/(1 − ᾱ_{t−1}): each term, the sum, and β̃ itself (q_posterior's variance).
    from_x_t, from_prior, total, variance = find(
        rf"= (N) + (N) = (N) \quad\Rightarrow\quad \tilde\beta_{{{t}}} = (N)$$",
        markdown,
    )
    exact_prior = math.inf if abar_prev == 1 else 1 / (1 - abar_prev)
    assert close(from_x_t, alpha / beta) and close(from_prior, exact_prior)
    assert close(total, alpha / beta + exact_prior)
    assert close(variance, float(q.variance))
    if t > 1:
        assert close(1 / total, float(q.variance))  # the identity the completed square gives
    # μ̃ for the pixel: the weights, the pixel's values and the result.
    c0, x0_shown, ct, x_t_shown, mean = find(r"= (N) \cdot ((N)) + (N) \cdot ((N)) = (N)$$", markdown)[:5]
    assert close(c0, schedule.posterior_mean_coef_x0[i]) and close(ct, schedule.posterior_mean_coef_xt[i])
    assert close(mean, float(q.mean))
    assert x0_shown == pytest.approx(PIXEL.x0) and x_t_shown == pytest.approx(PIXEL.x_t)


@pytest.mark.parametrize(("name", "t"), CASES)
def test_the_kl_term_is_the_gaussian_kl_to_the_models_step(name, t):
    schedule = SCHEDULES[name]
    i = timestep_of(t)
    markdown = posterior_derivation(schedule, t, PIXEL)
    x_t = torch.tensor([[PIXEL.x_t]], dtype=torch.float64)
    q = q_posterior(schedule, torch.tensor([[PIXEL.x0]], dtype=torch.float64), x_t, i)
    p = q_posterior(schedule, torch.tensor([[PIXEL.x0_hat]], dtype=torch.float64), x_t, i)  # p_θ: x̂₀ for x₀, σ² = β̃
    (model_mean,) = find(r"\mu_\theta = … = (N)$$", markdown)
    assert close(model_mean, float(p.mean))
    if t == 1:
        assert "point masses" in markdown and "decoder term L₀" in markdown
        (kl,) = find(r"L_{0} = D_{\mathrm{KL}}… = (N)$$", markdown)
        assert kl == math.inf and posterior_kl(schedule, 1, 0.3, 0.3) == 0.0
        return
    std = q.variance.sqrt()  # float64, like the means
    exact = torch.distributions.kl_divergence(
        torch.distributions.Normal(q.mean, std), torch.distributions.Normal(p.mean, std)
    )
    (kl,) = find(rf"L_{{{t - 1}}} = \frac… = (N)\ \text{{nats}}", markdown)
    assert close(kl, float(exact))
    assert posterior_kl(schedule, t, PIXEL.x0, PIXEL.x0_hat) == pytest.approx(float(exact), rel=1e-9)


def test_the_edges_are_said_in_words():
    one = posterior_derivation(SCHEDULES["linear"], 1, PIXEL)
    assert r"\tilde\beta_{1} = 0$$" in one and "the posterior is a point mass at x₀" in one.replace("The", "the")
    last = posterior_derivation(SCHEDULES["zero SNR"], 1000, PIXEL)
    assert "α<sub>1000</sub> = 0 (zero terminal SNR)" in last and "the posterior is the prior" in last
    assert "zero terminal SNR" not in posterior_derivation(SCHEDULES["underflow"], 1000, PIXEL)
    no_model = posterior_derivation(SCHEDULES["linear"], 200, PixelValues("pixel 0", 0.3, -0.5))
    assert "no p<sub>θ</sub> to compare with" in no_model and r"\text{nats}" not in no_model


def test_no_raw_latex_outside_display_equations():
    for name, t in CASES:
        prose = re.sub(r"\$\$.*?\$\$", "", posterior_derivation(SCHEDULES[name], t, PIXEL), flags=re.DOTALL)
        assert "$" not in prose and "\\" not in prose, prose
        assert all("\n" not in block for block in re.findall(r"\$\$.*?\$\$", prose, flags=re.DOTALL))


@pytest.mark.parametrize(("zero_snr", "t"), [(False, 1), (False, 200), (True, 1000)])
def test_the_view_ties_the_panel_to_the_plotted_pixel_and_the_model(zero_snr, t):
    """Through the handler: the panel's x₀ and x_t are the marked pixel's, μ̃ and β̃ are the plot's, x̂₀ the model's."""
    ensure_models()
    from ui import posterior
    from ui.controls import ScheduleValues
    from ui.models import optional_model
    from ui.posterior import PosteriorValues

    schedule_values = ScheduleValues("linear", zero_snr=zero_snr)
    schedule = schedule_values.parse(1)
    values = PosteriorValues(source="digit", index=3, t=t, seed=7, pixel=120)
    _, _, numbers, product, markdown, _ = posterior.update_posterior(values, schedule_values)
    i = timestep_of(t)
    x0 = example_digit(3)
    x_t = q_sample(schedule, x0, i, generator=torch.Generator().manual_seed(7))
    assert "pixel 120 (row 7, column 8)" in markdown
    c0, x0_shown, ct, x_t_shown, mean = find(r"= (N) \cdot ((N)) + (N) \cdot ((N)) = (N)$$", markdown)
    assert close(x0_shown, float(x0.flatten()[120])) and close(x_t_shown, float(x_t.flatten()[120]))
    assert f"μ̃ = {c0:.4g}·x₀ + {ct:.4g}·x<sub>t</sub>" in numbers  # the numbers line above the plot
    (variance,) = find(rf"\tilde\beta_{{{t}}} = (N)$$", markdown)
    names = [trace.name for trace in product.data]
    if t == 1:
        (mass,) = [re.search(r"point mass at x₀ = (\S+)$", name) for name in names if "point mass" in name]
        assert variance == 0 and float(mass[1]) == pytest.approx(x0_shown, rel=2e-3)
    else:
        (legend,) = [name for name in names if name.startswith("posterior N(")]
        plotted = re.search(r"μ̃=(\S+), β̃=(\S+)\)", legend)
        assert float(plotted[1]) == pytest.approx(mean, rel=2e-3) and float(plotted[2]) == pytest.approx(
            variance, rel=2e-3
        )
    model = optional_model("digits-eps")
    x0_hat = x0_at_noise_level(model, x_t, float(schedule.alphas_cumprod[i])).flatten()[120]
    (shown_hat,) = find(r"\hat x_0 = (N),", markdown)
    assert close(shown_hat, float(x0_hat)) and "**digits-eps**" in markdown


def test_the_marked_pixel_is_outlined_on_every_tile():
    ensure_models()
    import numpy as np

    from ui import posterior
    from ui.controls import ScheduleValues
    from ui.posterior import MARK, PICTURE_SCALE, PosteriorValues

    picture, *_ = posterior.update_posterior(PosteriorValues(t=200, pixel=120), ScheduleValues())
    pixels = np.asarray(picture)
    red = np.all(pixels == MARK, axis=-1)
    tile = (16 + 2) * PICTURE_SCALE
    columns = {int(column) // tile for column in np.nonzero(red.any(axis=0))[0]}
    assert columns == set(range(9))  # x₀, x_t, the two parts, μ̃ and four samples
    rows = np.nonzero(red.any(axis=1))[0]
    assert rows.min() == 7 * PICTURE_SCALE - 1 and rows.max() == 8 * PICTURE_SCALE  # around row 7 of the digit


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")
def test_the_panel_renders_katex_in_chromium(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.get_by_role("tab", name="Posterior").click()
    page.wait_for_selector("#post_numbers:has-text('t = 200')", timeout=300_000)  # a loaded machine is slow
    page.get_by_text("Derivation: Bayes' rule").click()
    panel = page.locator("#post_derivation")
    page.wait_for_function(
        "() => document.querySelectorAll('#post_derivation .katex-display').length >= 10", timeout=120_000
    )
    visible = panel.evaluate(
        "(node) => { const c = node.cloneNode(true); c.querySelectorAll('.katex-mathml').forEach("
        "(m) => m.remove()); return c.innerText; }"
    )
    assert "$" not in visible and "\\frac" not in visible and "\\tilde" not in visible
    assert panel.locator(".katex-error").count() == 0
    assert "pixel 120 (row 7, column 8)" in visible and "digits-eps" in visible
    page.close()
