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
    # The plot holds the ring's traces: read from plotly.js's own graph div (its `data`), not from the legend's
    # rendered text, which a full CI run once never showed although the update had arrived (the table had it).
    names = "() => (document.querySelector('#bound_plot .js-plotly-plot')?.data || []).map((t) => t.name || '')"
    holds_ring = f"() => ({names})().some((name) => name.includes('ring-eps'))"
    page.wait_for_function(holds_ring, timeout=300_000)
    assert not any("digits-eps" in name for name in page.evaluate(names))
    assert page.errors == []
