"""The derivation's KL can be recomputed from the numbers the page shows (issue 20 item 7).

The panel prints every number to 4 significant digits. The KL line's numerator is read back as the arithmetic it
shows (whatever it subtracts and squares), evaluated with the printed numbers, divided by twice the printed β̃, and
compared with the printed KL to 1 %; the printed KL is also checked against a float64 formula written here.
"""

from __future__ import annotations

import math
import re

import pytest

from explorer import Schedule, timestep_of
from explorer.figures.formulas import PixelValues, posterior_derivation

SCIENTIFIC = re.compile(r"(-?\d+(?:\.\d+)?) \\times 10\^\{(-?\d+)\}")
KL_LINE = re.compile(r"L_\{(\d+)\} = \\frac\{(.+?)\}\{2 \\cdot (.+?)\} = (.+?)\\ \\text\{nats\}\$\$")
SCHEDULES = {"linear": Schedule.from_name("linear", 1000), "cosine": Schedule.from_name("cosine", 1000)}
CASES = [
    ("linear", 500, 0.3, 0.1),
    ("linear", 1000, 0.3, 0.1),
    ("linear", 2, 0.3, 0.1),
    ("linear", 500, 0.3, 0.29),
    ("cosine", 999, -0.7, 0.2),
    ("cosine", 50, 0.3, 0.3001),
]


def arithmetic(latex: str) -> float:
    """The value of the shown arithmetic: numbers as printed, \\big( \\big) as brackets, ^2 as a square."""
    text = SCIENTIFIC.sub(lambda m: f"({m.group(1)}e{m.group(2)})", latex)
    text = text.replace(r"\big(", "(").replace(r"\big)", ")").replace("^2", "**2").replace(r"\cdot", "*")
    if not re.fullmatch(r"[\d.e()+\-* ]+", text):
        raise AssertionError(f"unexpected arithmetic on the page: {latex!r}")
    return float(eval(text))  # digits, brackets and operators only (checked above)


@pytest.mark.parametrize(("name", "t", "x0", "x0_hat"), CASES)
def test_the_shown_kl_follows_from_the_shown_numbers(name, t, x0, x0_hat):
    schedule = SCHEDULES[name]
    markdown = posterior_derivation(schedule, t, PixelValues("pixel 0", x0=x0, x_t=-0.5, x0_hat=x0_hat, model="m"))
    match = KL_LINE.search(markdown)
    assert match, "the derivation shows no L_{t−1} line"
    numerator, variance, kl = arithmetic(match.group(2)), arithmetic(match.group(3)), arithmetic(match.group(4))
    assert numerator / (2 * variance) == pytest.approx(kl, rel=0.01)
    # and the shown KL is the true one: c₀² (x₀ − x̂₀)² / (2 β̃), from the float64 tables
    a_prev, a_t = schedule.alphas_cumprod_prev[timestep_of(t)], schedule.alphas_cumprod[timestep_of(t)]
    beta = 1 - a_t / a_prev
    c0 = math.sqrt(a_prev) * beta / (1 - a_t)
    beta_tilde = (1 - a_prev) / (1 - a_t) * beta
    assert kl == pytest.approx((c0 * (x0 - x0_hat)) ** 2 / (2 * beta_tilde), rel=1e-3)
