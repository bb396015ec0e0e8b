"""Pictures on the page, in Debian's Chromium through Playwright: a 2-D run's scatter panels are large enough to
judge on a 1600 px page, presentation mode's picture labels do not cover the Posterior's pictures, and a refused
fullscreen (an iframe without allow="fullscreen") says so on the page. Each test writes its screenshot."""

from __future__ import annotations

from test_browser import SHOTS, _watch, pytestmark, serve_html  # noqa: F401 (marks)

WIDE = {"width": 1600, "height": 1000}
PROJECTOR = {"width": 1280, "height": 720}

# The player's panels as drawn on screen: canvas pixels per native pixel (data-scale) × CSS pixels per canvas pixel.
PANELS_ON_SCREEN = """() => {
  const canvas = document.querySelector('#frame canvas');
  const data = window.explorerFrames.data;
  const box = canvas.getBoundingClientRect();
  const perNative = Number(canvas.dataset.scale) * box.width / canvas.width;
  return {widths: data.panels.map((p) => p[2] * perNative), page: document.documentElement.clientWidth,
          right: box.right};
}"""

# Every picture's label and button bar in a block, and whether it covers the block's picture.
COVERED = """(id) => {
  const block = document.getElementById(id);
  const picture = block.querySelector('img').getBoundingClientRect();
  const over = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const parts = [...block.querySelectorAll('label[data-testid="block-label"], .icon-button-wrapper')];
  return {count: parts.length, covering: parts.filter((p) => over(p.getBoundingClientRect(), picture))
    .map((p) => p.textContent.trim() || p.className)};
}"""


def test_a_2d_runs_scatter_panels_are_at_least_240_px_on_a_1600_px_page(browser, app_url):
    page = browser.new_page(viewport=WIDE)
    page.errors = _watch(page)
    try:
        page.goto(app_url + "?tab=sampling&model=moons-eps&steps=8&frame=8")
        page.wait_for_selector("#frame canvas[data-frame='8']", timeout=240_000)
        page.wait_for_timeout(500)
        shown = page.evaluate(PANELS_ON_SCREEN)
        assert len(shown["widths"]) == 7 and min(shown["widths"]) >= 240, shown
        assert shown["right"] <= shown["page"]  # within the page, not cut
        page.locator("#frame").screenshot(path=str(SHOTS / "sampling_2d.png"))
        assert page.errors == []
    finally:
        page.close()


def test_presentation_labels_do_not_cover_the_posteriors_pictures(browser, app_url):
    page = browser.new_page(viewport=PROJECTOR)
    page.errors = _watch(page)
    try:
        page.goto(app_url + "?tab=posterior&present=1")
        page.wait_for_selector("body.presentation #post_picture img", timeout=180_000)
        page.wait_for_timeout(500)
        found = page.evaluate(COVERED, "post_picture")
        assert found["count"] == 2 and found["covering"] == [], found  # the label and the button bar
        page.screenshot(path=str(SHOTS / "posterior_presentation.png"))
        page.locator("#presentation input").click()  # out of presentation mode: Gradio's own layout again
        page.wait_for_selector("body:not(.presentation)", state="attached", timeout=10_000)
        assert page.errors == []
    finally:
        page.close()


def _embedding(app_url: str, allow: str):
    """A page on another port that embeds the app's sampling view in an iframe with `allow` (a server, stopped by
    the caller)."""
    html = (
        f'<!doctype html><title>embed</title><iframe src="{app_url}?tab=sampling" width="1300" height="900" '
        f"{allow}></iframe>"
    ).encode()

    return serve_html(html)


def test_fullscreen_refused_in_an_iframe_says_so_on_the_page(browser, app_url):
    server = _embedding(app_url, "")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = _watch(page)
    try:
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        inner = page.frame_locator("iframe")
        button = inner.locator("#frame_fullscreen_button")
        button.wait_for(timeout=120_000)
        message = inner.locator("#fullscreen_refused")
        assert message.count() == 0 or not message.is_visible()
        button.click()
        message.wait_for(state="visible", timeout=10_000)
        assert 'allow="fullscreen"' in message.inner_text()
        page.screenshot(path=str(SHOTS / "fullscreen_refused.png"))
        inner.locator("#fullscreen_refused button").click()  # it can be closed
        message.wait_for(state="hidden", timeout=10_000)
        assert errors == []
    finally:
        page.close()
        server.shutdown()


def test_an_iframe_with_allow_fullscreen_may_go_fullscreen(browser, app_url):
    server = _embedding(app_url, 'allow="fullscreen"')
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        frame = page.frame_locator("iframe")
        frame.locator("#frame_fullscreen_button").wait_for(timeout=120_000)
        inner = next(f for f in page.frames if f != page.main_frame)
        assert inner.evaluate("() => document.fullscreenEnabled") is True
    finally:
        page.close()
        server.shutdown()
