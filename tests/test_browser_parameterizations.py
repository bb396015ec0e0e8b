"""The Parameterizations tab in Debian's Chromium: it fills when opened (no button), and shows the last run."""

from __future__ import annotations

import test_browser
from test_browser import _set_number, pytestmark  # noqa: F401 (the marks)

page = test_browser.page  # the same page fixture: the app opened in Chromium, its errors watched


def test_the_tab_shows_its_figures_when_opened_without_a_button(page):
    page.get_by_role("tab", name="Parameterizations").click()
    page.wait_for_selector("#table_plot .js-plotly-plot", timeout=240_000)
    page.wait_for_selector("#comparison_plot .js-plotly-plot", timeout=60_000)
    page.wait_for_selector("#table_rows:has-text('flow velocity u')", timeout=60_000)
    assert "ε: SNR" in page.locator("#table_plot").inner_text()
    assert "digits-eps" in page.locator("#comparison_plot").inner_text()
    assert page.locator("#comparison_run img").count() == 0  # no run yet
    assert page.errors == []


def test_your_last_run_fills_after_a_run(page):
    page.get_by_role("tab", name="Reverse sampling").click()
    _set_number(page, "steps", "5")
    _set_number(page, "batch", "2")
    page.click("#run")
    page.wait_for_selector("#frame_text:has-text('Frame 5 of 5')", timeout=180_000)
    page.get_by_role("tab", name="Parameterizations").click()
    page.wait_for_selector("#comparison_run img", timeout=120_000)
    assert page.errors == []


def test_moons_compares_the_flow_network_with_the_others(page):
    page.get_by_role("tab", name="Parameterizations").click()
    page.wait_for_selector("#comparison_plot .js-plotly-plot", timeout=240_000)
    page.locator("#cmp_data").get_by_label("moons").check()
    page.wait_for_selector("#comparison_plot:has-text('moons-flow (u-prediction)')", timeout=240_000)
    legend = page.locator("#comparison_plot").inner_text()
    assert all(f"moons-{suffix}" in legend for suffix in ("eps", "x0", "v", "flow"))
    assert "MSE in u space" in legend
    page.wait_for_selector("#table_rows:has-text('moons-flow predicts u')", timeout=240_000)
    assert page.errors == []
