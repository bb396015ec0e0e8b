"""The page in Debian's Chromium through Playwright: loads cleanly, updates, runs, steps, compares, embeds."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
from app_fixtures import CHROMIUM

SHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]


def _watch(tab) -> list[str]:
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    return errors


@pytest.fixture(scope="module")
def page(browser, app_url):
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab = browser.new_page(viewport=VIEWPORT)
    tab.errors = _watch(tab)
    tab.goto(app_url)
    tab.wait_for_selector("#schedule_plot .js-plotly-plot", timeout=60_000)
    tab.wait_for_selector("#schedule_table table", timeout=60_000)  # sent by the page-load event
    yield tab
    tab.close()


def _set_number(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(value)
    box.press("Enter")


def test_page_loads_and_schedule_updates(page):
    assert page.errors == []
    before = page.locator("#schedule_table").inner_text()
    _set_number(page, "sched_t", "123")
    page.wait_for_selector("#schedule_table:has-text('t = 123')", timeout=30_000)
    assert page.locator("#schedule_table").inner_text() != before
    marker = page.locator("#schedule_plot").inner_text()
    _set_number(page, "T1", "400")  # schedule 1's T: the plot's legend follows
    page.wait_for_selector("#schedule_plot:has-text('T=400')", timeout=30_000)
    assert page.locator("#schedule_plot").inner_text() != marker
    page.screenshot(path=str(SHOTS / "schedules.png"), full_page=True)


def test_t_follows_T_at_once_when_T_is_typed(page):
    """Typing T = 300 moves t (then 500) down to 300 before the view redraws; the table and formulas agree."""
    page.get_by_role("tab", name="Schedules").click()
    _set_number(page, "T1", "1000")
    page.wait_for_selector("#schedule_plot:has-text('T=1000')", timeout=30_000)
    _set_number(page, "sched_t", "500")
    page.wait_for_selector("#schedule_table:has-text('t = 500')", timeout=30_000)
    _set_number(page, "T1", "300")
    page.wait_for_selector("#schedule_table:has-text('t = 300')", timeout=30_000)
    assert page.locator("#sched_t input[type=number]").input_value() == "300"
    assert "t = 300" in page.locator("#schedule_formulas").inner_text()
    page.wait_for_selector("#sched_t input[type=range][max='300']", timeout=30_000)  # its range ends at T too
    _set_number(page, "sched_t", "150")
    page.wait_for_selector("#schedule_table:has-text('t = 150')", timeout=30_000)
    _set_number(page, "T1", "2")  # below t: both follow, and nothing complains about t > T
    page.wait_for_selector("#schedule_table:has-text('t = 2')", timeout=30_000)
    assert page.locator("#sched_t input[type=number]").input_value() == "2"
    assert "greater than maximum" not in page.locator("body").inner_text()
    _set_number(page, "T1", "1000")
    page.wait_for_selector("#schedule_plot:has-text('T=1000')", timeout=30_000)


def test_the_posterior_follows_schedule_1(page):
    # Read the rendered tables, not the whole blocks: while an update is pending a block also shows
    # the status tracker's timer ("0.3s"), which is a change of text but not the new numbers.
    shown = "const t = document.querySelector(`#${id} table`) || document.querySelector(`#${id} .prose`);"
    table_of = "(id) => { " + shown + " return t ? t.innerText : ''; }"
    changed = "([id, old]) => { " + shown + " return !!t && t.innerText !== old; }"
    back = "([id, old]) => { " + shown + " return !!t && t.innerText === old; }"
    page.get_by_role("tab", name="Posterior").click()
    page.wait_for_selector("#post_numbers:has-text('t = 200')", timeout=30_000)
    before = page.evaluate(table_of, "post_numbers")
    page.get_by_role("tab", name="Schedules").click()
    page.wait_for_selector("#schedule_table table", timeout=30_000)
    table = page.evaluate(table_of, "schedule_table")
    _set_number(page, "be1", "0.04")  # schedule 1's β end doubles
    page.wait_for_function(changed, arg=["schedule_table", table], timeout=30_000)
    page.get_by_role("tab", name="Posterior").click()
    page.wait_for_function(changed, arg=["post_numbers", before], timeout=30_000)
    # Put schedule 1 back, so that the tests after this one see the page as it opens: the table
    # returns to exactly what it showed (a wait that times out here is the failure).
    page.get_by_role("tab", name="Schedules").click()
    _set_number(page, "be1", "0.02")
    page.wait_for_function(back, arg=["schedule_table", table], timeout=60_000)
    assert page.evaluate(table_of, "schedule_table") == table


def test_posterior_draws_the_true_reverse_on_2d_data(page):
    page.get_by_role("tab", name="Posterior").click()
    page.locator("#post_source").get_by_text("moons", exact=True).click()
    _set_number(page, "post_t", "300")
    _set_number(page, "post_step", "200")
    page.wait_for_selector("#reverse_plot:has-text('x100 | x300')", timeout=60_000)
    assert page.locator("#reverse_plot .hm image").count() >= 2  # heatmaps drawn as images by plotly.js
    page.screenshot(path=str(SHOTS / "posterior.png"), full_page=True)


def test_run_streams_and_stepping_changes_the_frame(page):
    page.get_by_role("tab", name="Reverse sampling").click()
    _set_number(page, "steps", "6")
    _set_number(page, "batch", "4")
    page.click("#run")
    page.wait_for_selector("#frame_text:has-text('Frame 6 of 6')", timeout=180_000)
    page.wait_for_selector("#frame canvas[data-frame='6']", timeout=30_000)  # the page holds the frames
    page.click("#prev_frame")
    page.wait_for_selector("#frame_text:has-text('Frame 5 of 6')", timeout=30_000)
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("#frame_text:has-text('Frame 4 of 6')", timeout=30_000)
    assert page.locator("#frame canvas").get_attribute("data-frame") == "4"
    page.screenshot(path=str(SHOTS / "sampling.png"), full_page=True)


def _wait_table_drawn(page) -> None:
    """Until the parameterization table's figure is drawn and no job for it is pending."""
    page.wait_for_selector("#table_plot .main-svg", timeout=180_000)
    page.wait_for_selector("#table_plot .generating", state="detached", timeout=180_000)


def test_comparison_shows_three_models(page):
    page.get_by_role("tab", name="Parameterizations").click()
    # The tab computes when opened; Compare is pressed once that is done (a second job of the same session while
    # one runs is refused: 429).
    page.wait_for_selector("#comparison_summary:has-text('digits-')", timeout=180_000)
    _wait_table_drawn(page)
    _set_number(page, "cmp_steps", "6")
    page.click("#compare")
    page.wait_for_selector("#comparison_summary:has-text('digits-')", timeout=180_000)
    legend = page.locator("#comparison_plot").inner_text()
    for name in ("digits-eps", "digits-x0", "digits-v", "KL term"):
        assert name in legend
    assert page.locator("#comparison_picture img").count() == 1
    _wait_table_drawn(page)
    page.screenshot(path=str(SHOTS / "parameterizations.png"), full_page=True)
    assert page.errors == []


def serve_html(html: bytes) -> http.server.ThreadingHTTPServer:
    """A page server on another port that answers every GET with `html` (stop it with `.shutdown()`)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_the_app_renders_inside_an_iframe(browser, app_url):
    html = f'<!doctype html><title>embed</title><iframe src="{app_url}" width="1300" height="900"></iframe>'.encode()
    server = serve_html(html)
    tab = browser.new_page(viewport=VIEWPORT)
    errors = _watch(tab)
    try:
        tab.goto(f"http://127.0.0.1:{server.server_port}/")
        inner = tab.frame_locator("iframe")
        inner.locator("#schedule_plot .js-plotly-plot").wait_for(timeout=60_000)
        assert "Reverse-diffusion explorer" in inner.locator("body").inner_text()
        tab.screenshot(path=str(SHOTS / "iframe.png"))
        assert errors == []
    finally:
        tab.close()
        server.shutdown()


def test_a_talk_url_restores_the_view_and_opens_a_frame(browser, app_url):
    """?tab=…&schedule=…&t=…&model=…&seed=…&steps=…&frame=… restores the view and shows that frame of a run."""
    tab = browser.new_page(viewport=VIEWPORT)
    errors = _watch(tab)
    try:
        tab.goto(f"{app_url}?tab=sampling&schedule=cosine&t=250&model=moons-eps&seed=3&steps=8&frame=5&present=1")
        tab.wait_for_selector("#frame_text:has-text('Frame 5 of 8')", timeout=120_000)
        tab.wait_for_selector("#frame canvas[data-frame='5']", timeout=30_000)
        tab.click("#next_frame")  # a talk link opens a run that steps like one started with Run
        tab.wait_for_selector("#frame_text:has-text('Frame 6 of 8')", timeout=30_000)
        tab.keyboard.press("ArrowLeft")
        tab.wait_for_selector("#frame_text:has-text('Frame 5 of 8')", timeout=30_000)
        assert tab.locator("#model input").input_value() == "moons-eps"
        assert tab.locator("#seed input[type=number]").input_value() == "3"
        assert tab.locator("body.presentation").count() == 1
        tab.get_by_role("tab", name="Schedules").click()
        assert tab.locator("#sched_t input[type=number]").input_value() == "250"
        assert "squaredcos" in tab.locator("#schedule_plot").inner_text()
        assert errors == []
    finally:
        tab.close()


def test_copy_link_round_trips_every_control_and_clamps_bad_values(browser, app_url):
    tab = browser.new_page(viewport=VIEWPORT)
    errors = _watch(tab)
    try:
        tab.goto(app_url)
        tab.wait_for_selector("#schedule_plot .js-plotly-plot", timeout=60_000)
        _set_number(tab, "T2", "500")
        _set_number(tab, "sched_steps", "20")
        tab.get_by_role("tab", name="Posterior").click()
        _set_number(tab, "post_t", "77")
        tab.get_by_role("tab", name="Reverse sampling").click()
        _set_number(tab, "steps", "12")
        _set_number(tab, "seed", "42")
        tab.locator("#sampler").get_by_text("ddim", exact=True).click()
        tab.click("#copy_link")
        tab.wait_for_function("() => document.querySelector('#link textarea, #link input').value.includes('steps=12')")
        url = tab.locator("#link textarea, #link input").first.input_value()
        for part in ("tab=sampling", "T2=500", "sched_steps=20", "post_t=77", "steps=12", "seed=42", "sampler=ddim"):
            assert part in url, url
        fresh = browser.new_page(viewport=VIEWPORT)
        fresh.goto(url)
        fresh.wait_for_selector("#steps input[type=number]", timeout=60_000)
        fresh.wait_for_function("() => document.querySelector('#steps input[type=number]').value === '12'")
        assert fresh.locator("#seed input[type=number]").input_value() == "42"
        assert fresh.locator("#sampler input[value=ddim]").is_checked()
        assert fresh.locator("#T2 input[type=number]").input_value() == "500"
        fresh.get_by_role("tab", name="Posterior").click()
        assert fresh.locator("#post_t input[type=number]").input_value() == "77"
        fresh.close()
        clamped = browser.new_page(viewport=VIEWPORT)
        clamped.goto(f"{app_url}?t=5000&post_t=-3")
        clamped.wait_for_selector("#schedule_table:has-text('t = 1000')", timeout=60_000)
        assert clamped.locator("#sched_t input[type=number]").input_value() == "1000"
        assert "is outside" in clamped.locator("body").inner_text()  # the warning says what was done
        assert "Error" not in clamped.locator("#schedule_plot").inner_text()
        clamped.close()
        assert errors == []
    finally:
        tab.close()
