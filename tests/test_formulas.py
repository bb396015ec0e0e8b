"""The formulas text: display maths only in $$…$$ (what gr.Markdown renders), honest notes at the edges."""

from __future__ import annotations

import re

import pytest

from explorer import Schedule
from explorer.figures.formulas import step_formulas

ZERO_SNR = Schedule.from_name("linear", 10, rescale_zero_terminal_snr=True)
UNDERFLOW = Schedule.from_name("linear", 1000, beta_end=0.999)  # ᾱ_T = e^−995.7 underflows float64


def prose(markdown: str) -> str:
    """The text outside display equations: what gr.Markdown shows as it is."""
    return re.sub(r"\$\$.*?\$\$", "", markdown, flags=re.DOTALL)


@pytest.mark.parametrize(("schedule", "t"), [(ZERO_SNR, 1), (ZERO_SNR, 5), (ZERO_SNR, 10), (UNDERFLOW, 1000)])
def test_no_raw_latex_outside_display_equations(schedule: Schedule, t: int) -> None:
    text = prose(step_formulas(schedule, t))
    assert "$" not in text and "\\" not in text, text


def test_the_t_equals_1_note_is_unicode() -> None:
    assert "β̃₁ = 0 exactly (ᾱ₀ = 1)" in prose(step_formulas(ZERO_SNR, 1))


def test_zero_terminal_snr_is_named_only_when_it_is_so_by_construction() -> None:
    assert "Zero terminal SNR by construction" in step_formulas(ZERO_SNR, 10)
    assert "undefined" in step_formulas(ZERO_SNR, 10)
    underflow = prose(step_formulas(UNDERFLOW, 1000))
    assert "Zero terminal SNR" not in underflow
    assert "underflows to 0 in float64" in underflow and "log SNR<sub>1000</sub> = −995.7 is finite" in underflow
    assert "not zero terminal SNR" in underflow
    assert "float64" not in prose(step_formulas(Schedule.from_name("cosine", 1000), 1000))
