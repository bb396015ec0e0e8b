"""Every figure is drawn once: its margins already hold its legend and tick labels, so Plotly never has to push a
margin out and draw the whole figure again (a second full draw, measured at +40 % of the schedule figure's first
draw, on the page's critical path to its first plot and in the long tasks of a run)."""

from __future__ import annotations

from test_browser import VIEWPORT, _watch, pytestmark  # noqa: F401 (marks)
from test_browser_frames import _wait_frame

# Per plot on the page: the margins it asked for and the ones Plotly drew with (pushed out when something did not fit).
MARGINS = """() => [...document.querySelectorAll('.js-plotly-plot')].filter((gd) => gd._fullLayout).map((gd) => {
  const asked = gd._fullLayout.margin, drawn = gd._fullLayout._size;
  const id = gd.closest('[id]') ? gd.closest('[id]').id : '?';
  const sides = ['l', 'r', 't', 'b'].filter((side) => drawn[side] > asked[side]);
  return [id, sides.map((side) => `${side} ${asked[side]} → ${drawn[side]}`)];
})"""


def _pushed(page) -> dict[str, list[str]]:
    return {plot: sides for plot, sides in page.evaluate(MARGINS) if sides}


def test_the_first_plot_and_a_runs_figures_are_drawn_without_pushing_a_margin(browser, app_url):
    page = browser.new_page(viewport=VIEWPORT)
    page.errors = _watch(page)
    page.goto(app_url)
    page.wait_for_selector("#schedule_plot .main-svg", timeout=120_000)
    assert page.evaluate(MARGINS), "no figure was found to check"
    assert _pushed(page) == {}

    page.get_by_role("tab", name="Reverse sampling").click()
    page.click("#run")
    _wait_frame(page, 50, 50, timeout=300_000)
    page.wait_for_timeout(1_000)
    drawn = [plot for plot, _ in page.evaluate(MARGINS)]
    assert len(drawn) >= 2, drawn
    assert _pushed(page) == {}
    assert page.errors == []
    page.close()


def test_every_tabs_figures_are_drawn_without_pushing_a_margin(browser, app_url):
    page = browser.new_page(viewport=VIEWPORT)
    page.errors = _watch(page)
    page.goto(app_url)
    page.wait_for_selector("#schedule_plot .main-svg", timeout=120_000)
    pushed = {}
    for tab in ("Posterior", "Parameterizations", "Bound", "Memorization"):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_selector("[role=tabpanel]:visible .js-plotly-plot .main-svg", timeout=240_000)
        page.wait_for_timeout(3_000)  # every figure of the tab lands
        pushed.update({f"{tab}: {plot}": sides for plot, sides in _pushed(page).items()})
    assert pushed == {}, "\n".join(f"{plot}: {sides}" for plot, sides in pushed.items())
    assert page.errors == []
    page.close()
