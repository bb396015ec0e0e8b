"""The Bound tab in Debian's Chromium: it fills when opened (no button), and a change of data set redraws it."""

from __future__ import annotations

import test_browser
from test_browser import SHOTS, pytestmark  # noqa: F401 (the marks)

page = test_browser.page  # the same page fixture: the app opened in Chromium, its errors watched


def test_the_bound_panel_renders_when_opened_and_updates_with_the_data(page):
    page.get_by_role("tab", name="Bound").click()
    page.wait_for_selector("#bound_plot .js-plotly-plot", timeout=300_000)
    page.wait_for_selector("#bound_table:has-text('exact-digits')", timeout=60_000)
    legend = page.locator("#bound_plot").inner_text()
    assert "digits-eps" in legend and "exact-digits" in legend and "β̃" in legend
    assert "held-out data" in page.locator("#bound_table").inner_text()
    page.screenshot(path=str(SHOTS / "bound.png"), full_page=True)
    page.locator("#bound_data label:has-text('ring')").click()
    page.wait_for_selector("#bound_table:has-text('exact-ring')", timeout=300_000)
    page.wait_for_selector("#bound_plot:has-text('ring-eps')", timeout=300_000)  # a loaded CI machine redraws late
    assert "digits-eps" not in page.locator("#bound_plot").inner_text()
    assert page.errors == []
