"""The decoded panel in Chromium: it shows the frame decoded, and clears once the page shows another frame or a
branch; controls that cannot apply are disabled before the click."""

from __future__ import annotations

import pytest
from test_browser import VIEWPORT, _set_number, _watch, pytestmark  # noqa: F401 (marks)
from test_browser_frames import CANVAS, _wait_frame
from tiny_pipelines import SD_EPS, tiny_repos  # noqa: F401 (tiny_repos: a fixture)

DECODED_IMG = "#decoded img"


@pytest.fixture(scope="module")
def page(browser, app_url, tiny_repos):  # noqa: F811
    """A page with a finished 4-step run of a tiny latent model (batch 1)."""
    tab = browser.new_page(viewport=VIEWPORT)
    tab.errors = _watch(tab)
    tab.goto(app_url)
    tab.get_by_role("tab", name="Reverse sampling").click(timeout=120_000)
    tab.locator("#typed_model textarea, #typed_model input").first.fill(SD_EPS)
    tab.locator("#typed_model textarea, #typed_model input").first.press("Enter")
    _set_number(tab, "steps", "4")
    _set_number(tab, "batch", "1")
    tab.locator("#sampler").get_by_text("ddim", exact=True).click()
    tab.click("#run")
    _wait_frame(tab, 4, 4, timeout=240_000)
    yield tab
    tab.close()


def _decode(page) -> None:
    page.click("#decode_frame")
    page.wait_for_selector(DECODED_IMG, timeout=120_000)


def test_the_decoded_panel_clears_when_the_frame_moves_on(page):
    _set_number(page, "frame_slider", "2")
    _wait_frame(page, 2, 4)
    _decode(page)
    page.locator(CANVAS).click()
    page.keyboard.press("ArrowRight")
    _wait_frame(page, 3, 4)
    page.wait_for_selector(DECODED_IMG, state="detached", timeout=10_000)  # it showed frame 2: cleared
    _decode(page)
    page.wait_for_timeout(500)
    assert page.locator(DECODED_IMG).count() == 1  # the frame shown: it stays
    assert page.errors == []


def test_the_decoded_panel_follows_a_branch(page):
    _set_number(page, "frame_slider", "2")
    _wait_frame(page, 2, 4)
    _decode(page)
    page.click("#branch")
    page.wait_for_selector(f"{CANVAS}[data-which='branch'][data-total='4']", timeout=240_000)
    _wait_frame(page, 4, 4)
    page.wait_for_selector(DECODED_IMG, state="detached", timeout=10_000)  # frame 2 of the run: not the branch's
    _decode(page)  # the branch's frame 4
    page.wait_for_timeout(500)
    assert page.locator(DECODED_IMG).count() == 1
    page.locator("#run_choice").get_by_text("run", exact=True).click()
    page.wait_for_selector(f"{CANVAS}[data-which='run'][data-total='4']", timeout=30_000)
    page.wait_for_selector(DECODED_IMG, state="detached", timeout=10_000)  # the branch's frame: not the run's
    assert page.errors == []
