"""The page in Debian's Chromium through Playwright: loads cleanly, updates, runs, steps, compares."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_fixtures import ensure_models, free_port

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def page():
    ensure_models()
    from playwright.sync_api import sync_playwright

    import app

    port = free_port()
    app.demo.launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, head=app.sampling.KEYBOARD_JS
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.errors = []
        tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: tab.errors.append(str(e)))
        tab.goto(f"http://127.0.0.1:{port}/")
        tab.wait_for_selector("#schedule_plot .js-plotly-plot", timeout=60_000)
        yield tab
        browser.close()
    app.demo.close()


def test_page_loads_and_schedule_updates(page):
    assert page.errors == []
    before = page.locator("#schedule_table").inner_text()
    page.locator("#sched_t input[type=number]").fill("123")
    page.locator("#sched_t input[type=number]").press("Enter")
    page.wait_for_selector("#schedule_table:has-text('t = 123')", timeout=30_000)
    assert page.locator("#schedule_table").inner_text() != before
    page.screenshot(path=str(SHOTS / "schedules.png"), full_page=True)


def test_run_streams_and_stepping_changes_the_frame(page):
    page.get_by_role("tab", name="Reverse sampling").click()
    for elem, value in (("#steps", "6"), ("#batch", "4")):
        page.locator(f"{elem} input[type=number]").fill(value)
        page.locator(f"{elem} input[type=number]").press("Enter")
    page.click("#run")
    page.wait_for_selector("#frame_text:has-text('Frame 6 of 6')", timeout=180_000)
    first = page.locator("#frame img").get_attribute("src")
    page.click("#prev_frame")
    page.wait_for_selector("#frame_text:has-text('Frame 5 of 6')", timeout=30_000)
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("#frame_text:has-text('Frame 4 of 6')", timeout=30_000)
    assert page.locator("#frame img").get_attribute("src") != first
    page.screenshot(path=str(SHOTS / "sampling.png"), full_page=True)


def test_comparison_shows_three_models(page):
    page.get_by_role("tab", name="Parameterizations").click()
    page.click("#compare")
    page.wait_for_selector("#comparison_summary:has-text('digits-')", timeout=180_000)
    legend = page.locator("#comparison_plot").inner_text()
    for name in ("digits-eps", "digits-x0", "digits-v"):
        assert name in legend
    page.screenshot(path=str(SHOTS / "parameterizations.png"), full_page=True)
    assert page.errors == []
