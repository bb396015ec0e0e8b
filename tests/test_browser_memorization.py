"""The Memorization tab in Debian's Chromium: it fills when opened, and the N slider redraws the twins at the new N."""

from __future__ import annotations

import pytest
import test_browser
from test_browser import SHOTS, _set_number, pytestmark  # noqa: F401 (the marks)

from explorer.models.twins import twin_sizes

page = test_browser.page  # the same page fixture: the app opened in Chromium, its errors watched


@pytest.mark.skipif(len(twin_sizes("moons")) < 2, reason="the moons twins are not shipped yet")
def test_the_n_slider_renders_and_updates_the_twins(page):
    sizes = twin_sizes("moons")
    page.get_by_role("tab", name="Memorization").click()
    page.wait_for_selector("#mem_twins .js-plotly-plot", timeout=240_000)
    page.wait_for_selector("#mem_curves .js-plotly-plot", timeout=60_000)
    assert page.locator("#mem_n input[type=range]").count() == 1  # the slider is drawn
    page.wait_for_selector(f"#mem_numbers:has-text('N = {sizes[0]} per twin')", timeout=60_000)
    assert f"N = {sizes[0]} per twin" in page.locator("#mem_twins").inner_text()
    assert "What the curves show" in page.locator("#mem_summary").inner_text()

    _set_number(page, "mem_n", str(sizes[1].bit_length() - 1))  # log₂ N of the next shipped size
    page.wait_for_selector(f"#mem_numbers:has-text('N = {sizes[1]} per twin')", timeout=120_000)
    page.wait_for_selector(f"#mem_twins:has-text('N = {sizes[1]} per twin')", timeout=60_000)

    page.locator("#mem_n input[type=range]").focus()  # the range itself, moved with the keyboard (.input)
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector(f"#mem_numbers:has-text('N = {sizes[0]} per twin')", timeout=120_000)
    assert page.errors == []


@pytest.mark.skipif(len(twin_sizes("digits")) < 2, reason="the digits twins are not shipped yet")
def test_the_digits_twins_are_drawn_as_pictures_and_follow_the_slider(page):
    sizes = twin_sizes("digits")
    page.get_by_role("tab", name="Memorization").click()
    page.wait_for_selector("#mem_curves .js-plotly-plot", timeout=240_000)
    page.locator("#mem_data").get_by_label("digits").check()
    page.wait_for_selector(f"#mem_numbers:has-text('N = {sizes[0]} per twin')", timeout=240_000)
    drawn = "() => document.querySelector('#mem_twins .js-plotly-plot')?.data?.[0]?.type === 'image'"
    page.wait_for_function(drawn, timeout=60_000)  # the table of pictures, one Plotly image
    box = page.locator("#mem_twins .js-plotly-plot image").bounding_box()
    assert box is not None and box["width"] >= 400, box
    assert "digits: measured against N" in page.locator("#mem_curves").inner_text()
    _set_number(page, "mem_n", "12")  # the top of the slider: the largest digits half
    page.wait_for_selector(f"#mem_numbers:has-text('N = {sizes[-1]} per twin')", timeout=240_000)
    page.wait_for_selector(f"#mem_twins:has-text('N = {sizes[-1]} per twin')", timeout=60_000)
    page.locator("#mem_twins").screenshot(path=str(SHOTS / "memorization_digits.png"))
    assert page.errors == []
