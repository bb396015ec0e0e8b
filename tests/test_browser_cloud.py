"""The animated cloud in Debian's Chromium: run moons, animate, press Plotly's own Play, the frames change."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_fixtures import CHROMIUM

SHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
STEPS = 50
PLOT = "#cloud .js-plotly-plot"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def page(browser):
    tab = browser.new_page(viewport=VIEWPORT)
    tab.errors = []
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    yield tab
    tab.close()


def _title(page) -> str:
    return page.evaluate(f"() => document.querySelector('{PLOT}').layout.title.text")


def _pictures(page) -> int:
    """Density pictures drawn now (one on every frame but the final samples')."""
    return page.locator(f"{PLOT} image").count()


def test_the_cloud_animates_in_the_browser(page, app_url):
    page.goto(f"{app_url}?tab=sampling&model=moons-eps&steps={STEPS}&batch=256&seed=1")
    page.wait_for_function(f"() => document.querySelector('#steps input[type=number]')?.value === '{STEPS}'")
    page.click("#run", timeout=120_000)
    page.wait_for_selector("#diagnostics .js-plotly-plot", timeout=300_000)  # drawn when the run is kept
    page.click("#animate_cloud")
    page.wait_for_function(f"() => document.querySelector('{PLOT}')?.dataset.frames === '{STEPS + 1}'", timeout=180_000)
    names = page.evaluate(f"() => document.querySelector('{PLOT}')._transitionData._frames.map((f) => f.name)")
    assert len(names) == STEPS + 1 and names[-1] == "0 (x₀)"  # every step of a 50-step run, then the final samples
    first = _title(page)
    assert first.startswith(f"t = {names[0]} → {names[1]}")
    assert _pictures(page) == 1
    assert "exact for" in page.locator("#cloud_caption").inner_text()
    page.locator(f"{PLOT} .updatemenu-button").first.click()  # Plotly's own ▶ Play
    page.wait_for_function(
        f"(first) => document.querySelector('{PLOT}').layout.title.text !== first", arg=first, timeout=60_000
    )
    seen = set()
    for tick in range(10):  # while it plays, the density picture never drops out
        seen.add(_title(page))
        if tick == 3:
            page.screenshot(path=str(SHOTS / "cloud.png"), full_page=False)
        assert _pictures(page) == 1 or "final samples" in _title(page)
        page.wait_for_timeout(400)
    assert len(seen) >= 2  # the frames move on by themselves
    page.wait_for_function(
        f"() => document.querySelector('{PLOT}').layout.title.text.includes('final samples')", timeout=120_000
    )
    page.wait_for_timeout(500)
    assert _pictures(page) == 0  # the final frame: the samples over the training set, no density
    training = page.evaluate(f"() => document.querySelector('{PLOT}')._fullData[0]._length")
    assert training == 1000
    assert page.errors == []


def test_a_flow_run_shows_straight_training_paths_beside_the_exact_curved_ones(page, app_url):
    page.goto(f"{app_url}?tab=sampling&model=moons-flow&steps=10&batch=32&seed=2")
    page.wait_for_function("() => document.querySelector('#steps input[type=number]')?.value === '10'")
    page.click("#run", timeout=120_000)
    page.wait_for_selector("#diagnostics .js-plotly-plot", timeout=300_000)
    page.click("#animate_cloud")
    page.wait_for_selector("#flow_paths .js-plotly-plot", timeout=300_000)
    legend = page.locator("#flow_paths").inner_text()
    assert "straight training paths" in legend and "exact paths of the marginal velocity u*" in legend
    page.wait_for_selector("#flow_paths_text:has-text('Euler steps along the exact u*')", timeout=60_000)
    assert "took 10 steps" in page.locator("#flow_paths_text").inner_text()
    assert page.errors == []
