"""Frames in Chromium: stepping swaps frames in the page (no request), Play stops at the end, a talk link steps at
once, Stop leaves no "computing" line, and a branch is steppable beside its run."""

from __future__ import annotations

import pytest
from test_browser import VIEWPORT, _set_number, _watch, pytestmark  # noqa: F401 (marks)

CANVAS = "#frame canvas"


def _frame(page) -> str:
    return page.locator(CANVAS).get_attribute("data-frame") or ""


def _wait_frame(page, frame: int, total: int, timeout: float = 30_000) -> None:
    page.wait_for_selector(f"{CANVAS}[data-frame='{frame}'][data-total='{total}']", timeout=timeout)
    page.wait_for_selector(f"#frame_text:has-text('Frame {frame} of {total}')", timeout=timeout)


def _server_requests(page, app_url: str) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url) if request.url.startswith(app_url) else None)
    return seen


@pytest.fixture(scope="module")
def page(browser, app_url):
    """A page with a finished 12-step run on digits (batch 4)."""
    tab = browser.new_page(viewport=VIEWPORT)
    tab.errors = _watch(tab)
    tab.goto(app_url)
    tab.get_by_role("tab", name="Reverse sampling").click(timeout=120_000)
    _set_number(tab, "steps", "12")
    _set_number(tab, "batch", "4")
    tab.click("#run")
    _wait_frame(tab, 12, 12, timeout=240_000)
    yield tab
    tab.close()


def test_ten_quick_presses_move_ten_frames_without_a_request(page, app_url):
    requests = _server_requests(page, app_url)
    for _ in range(10):
        page.keyboard.press("ArrowLeft")
    assert _frame(page) == "2"  # drawn at once: every press counted
    _wait_frame(page, 2, 12)
    assert page.locator("#frame_slider input[type=number]").input_value() == "2"
    for _ in range(3):
        page.click("#next_frame")
    page.click("#prev_frame")
    _wait_frame(page, 4, 12)
    assert requests == [], requests
    assert "All 12 frames are held by the page" in page.locator("#frame").inner_text()
    assert page.errors == []


def test_the_slider_shows_its_frame_in_the_page(page, app_url):
    requests = _server_requests(page, app_url)
    _set_number(page, "frame_slider", "7")
    _wait_frame(page, 7, 12)
    assert requests == [], requests


def test_play_has_a_speed_and_stops_at_the_last_frame(page):
    _set_number(page, "play_fps", "20")
    _set_number(page, "frame_slider", "9")
    _wait_frame(page, 9, 12)
    page.click("#play")
    assert "Pause" in page.locator("#play").inner_text()
    _wait_frame(page, 12, 12, timeout=10_000)
    page.wait_for_selector("#play:has-text('▶ Play')", timeout=5_000)
    page.wait_for_timeout(400)
    assert _frame(page) == "12"  # it stopped there


def test_a_branch_is_steppable_beside_its_run(page):
    _set_number(page, "frame_slider", "3")
    _wait_frame(page, 3, 12)
    _set_number(page, "steps", "6")
    page.locator("#sampler").get_by_text("ddim", exact=True).click()
    page.click("#branch")
    page.wait_for_selector("#branch_note:has-text('Branch from frame 3: sampler ddim (run: ddpm)')", timeout=240_000)
    assert "4 remaining steps (run: 10)" in page.locator("#branch_note").inner_text()
    page.wait_for_selector(f"{CANVAS}[data-which='branch'][data-total='6']", timeout=30_000)
    _wait_frame(page, 6, 6)  # like a run, a finished branch shows its last frame
    assert "branch from frame 3" in page.locator("#diagnostics").inner_text()
    page.locator(CANVAS).click()  # the keys step frames when the focus is not in a control (here: a radio)
    page.keyboard.press("ArrowLeft")
    _wait_frame(page, 5, 6)
    page.locator("#run_choice").get_by_text("run", exact=True).click()
    page.wait_for_selector(f"{CANVAS}[data-which='run'][data-total='12']", timeout=30_000)
    _wait_frame(page, 5, 12)  # the same frame number of the run
    page.locator(CANVAS).click()
    page.keyboard.press("ArrowRight")
    _wait_frame(page, 6, 12)
    page.locator("#run_choice").get_by_text("branch from frame 3").click()
    page.wait_for_selector(f"{CANVAS}[data-which='branch'][data-total='6']", timeout=30_000)
    assert page.errors == []


def test_stop_says_stopped_and_stepping_browses_the_last_finished_run(page):
    page.locator("#run_choice").get_by_text("run", exact=True).click()
    page.wait_for_selector(f"{CANVAS}[data-which='run'][data-total='12']", timeout=30_000)
    _set_number(page, "steps", "400")
    page.click("#run")
    page.wait_for_selector("#frame_text:has-text('computing step')", timeout=120_000)
    page.click("#stop")
    said = "#frame_text:has-text('Stopped'), #frame_text:has-text('Nothing to stop')"
    page.wait_for_selector(said, timeout=30_000)
    page.wait_for_timeout(2_000)  # anything still in flight lands
    text = page.locator("#frame_text").inner_text()
    assert "computing" not in text
    page.locator(CANVAS).click()
    page.keyboard.press("ArrowLeft")
    # the last finished run: the earlier 12-step one, or (on a fast machine, where the 400 steps can end before Stop
    # reaches the server) the 400-step one, and then Stop says there was nothing to stop; either way the picture and
    # the status line step through the same run
    total = page.locator(CANVAS).get_attribute("data-total")
    assert total == ("400" if "Nothing to stop" in text else "12"), (total, text)
    page.wait_for_selector(f"#frame_text:has-text('of {total}')", timeout=30_000)
    assert page.locator(CANVAS).is_visible()


def test_a_talk_link_steps_in_the_page_at_once(browser, app_url):
    tab = browser.new_page(viewport=VIEWPORT)
    errors = _watch(tab)
    try:
        tab.goto(f"{app_url}?tab=sampling&model=digits-eps&seed=3&steps=6&batch=4&frame=3")
        _wait_frame(tab, 3, 6, timeout=240_000)
        requests = _server_requests(tab, app_url)
        tab.keyboard.press("ArrowRight")
        assert _frame(tab) == "4"
        _wait_frame(tab, 4, 6)
        tab.click("#prev_frame")
        tab.click("#prev_frame")
        _wait_frame(tab, 2, 6)
        assert requests == [], requests
        assert errors == []
    finally:
        tab.close()


def test_the_decoder_is_disabled_with_its_reason_for_a_pixel_run(page):
    assert page.locator("#decode_frame").is_disabled()
    assert "pixel space" in page.locator("#decoder").inner_text()
    assert page.locator("#branch").is_enabled()  # a run of the explorer's own sampler branches from any frame
