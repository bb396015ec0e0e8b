"""Presentation mode, the fullscreen frame and figures drawn in hidden tabs, in Debian's Chromium through Playwright.

At 1280×720 (a projector): text grows once by `PRESENTATION_SCALE` (no compounding, KaTeX only as a whole), the
checkbox label is whole, no formula is clipped, figures' fonts and heights grow and return, the frame picture of a
16-digit run is at least 3× its native size, and the frame's fullscreen fills the screen while ← → keep stepping.
At 1920×1080: a figure drawn while its tab was hidden fills its container once the tab is opened.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from app_fixtures import CHROMIUM
from test_browser import _set_number

from ui.launch import PRESENTATION_SCALE

SHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
PROJECTOR = {"width": 1280, "height": 720}
WIDE = {"width": 1920, "height": 1080}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]

# Text whose size the theme sets at different levels of nesting: each must grow by the factor exactly once.
TEXT = {
    "a paragraph": "#tabs .prose p",
    "bold inside a paragraph": "#tabs .prose p strong",
    "the page title": ".prose h1",
    "the checkbox label": "#presentation .label-text",
    "a tab's name": "[role=tab]",
    "a table cell": "#schedule_table td",
    "a formula": "#schedule_formulas .katex",
    "a symbol deep inside a formula": "#schedule_formulas .katex .mord .mord",
    "a number box": "#sched_t input[type=number]",
}
FONT_SIZES = """(selectors) => Object.fromEntries(Object.entries(selectors).map(([name, selector]) => {
  const element = document.querySelector(selector);
  return [name, element ? parseFloat(getComputedStyle(element).fontSize) : null];
}))"""

# Every formula on screen whose ink (KaTeX's .base boxes) reaches outside an ancestor that clips, or off the page.
CLIPPED_FORMULAS = """() => {
  const clipped = [];
  for (const formula of document.querySelectorAll('.katex')) {
    const pieces = [...formula.querySelectorAll('.katex-html > .base')].map((p) => p.getBoundingClientRect());
    if (!pieces.length || formula.getClientRects().length === 0) continue;
    const left = Math.min(...pieces.map((b) => b.left)), right = Math.max(...pieces.map((b) => b.right));
    if (right - left === 0) continue;
    const where = formula.closest('[id]') ? formula.closest('[id]').id : '?';
    if (left < -1 || right > document.documentElement.clientWidth + 1) clipped.push(`${where}: off the page`);
    for (let box = formula.parentElement; box && box !== document.body; box = box.parentElement) {
      if (getComputedStyle(box).overflowX === 'visible') continue;
      const edge = box.getBoundingClientRect();
      if (left < edge.left - 1 || right > edge.right + 1) {
        clipped.push(`${where}: ${Math.round(right - left)} px of formula in ${Math.round(edge.width)} px`);
        break;
      }
    }
  }
  return clipped;
}"""

# The picture the frame view shows (an <img> or the page's <canvas>): native width, and the width it is drawn at
# (object-fit: contain keeps the aspect inside the element's box).
FRAME_PICTURE = """() => {
  const shown = [...document.querySelectorAll('#frame img, #frame canvas')].filter((e) => e.getClientRects().length);
  const picture = shown.sort((a, b) => b.getBoundingClientRect().width - a.getBoundingClientRect().width)[0];
  if (!picture) return null;
  const image = picture.tagName === 'IMG';
  const own = image ? [picture.naturalWidth, picture.naturalHeight] : [picture.width, picture.height];
  const frames = window.explorerFrames && window.explorerFrames.data;
  const native = picture.tagName === 'CANVAS' && frames && frames.width ? frames.width : own[0];
  const box = picture.getBoundingClientRect();
  const fit = Math.min(box.width / own[0], box.height / own[1]);
  // a canvas draws its panels at data-scale canvas pixels per native pixel (in one row, or two in presentation mode)
  const drawn = image ? own[0] * fit : native * Number(picture.dataset.scale || 1) * fit;
  const container = document.getElementById('frame').getBoundingClientRect();
  return {tag: picture.tagName, native, drawn, shown: own[0] * fit, right: box.right, container: container.width,
          container_right: container.right, height_limited: box.height / own[1] < box.width / own[0] - 1e-6,
          rendering: getComputedStyle(picture).imageRendering};
}"""

# The fullscreen element (or Gradio's window-filling block), and the size its picture is drawn at inside it.
FULLSCREEN = """() => {
  const view = document.fullscreenElement || document.querySelector('.block.fullscreen');
  if (!view) return null;
  const picture = view.querySelector('canvas') || view.querySelector('img');
  const image = picture.tagName === 'IMG';
  const own = image ? [picture.naturalWidth, picture.naturalHeight] : [picture.width, picture.height];
  const box = picture.getBoundingClientRect();
  const fit = Math.min(box.width / own[0], box.height / own[1]);
  const caption = view.querySelector('.caption');
  return {id: view.id, width: view.getBoundingClientRect().width, height: view.getBoundingClientRect().height,
          drawn: [own[0] * fit, own[1] * fit], box: [box.width, box.height],
          caption: caption ? caption.textContent : null, rendering: getComputedStyle(picture).imageRendering};
}"""

PLOT = """(id) => {
  const figure = document.querySelector(`#${id} .js-plotly-plot`);
  if (!figure || !figure._fullLayout) return null;
  const layout = figure._fullLayout;
  return {font: layout.font.size, height: layout.height, width: layout.width,
          annotations: (layout.annotations || []).map((a) => a.font.size),
          container: figure.parentElement.getBoundingClientRect().width};
}"""

# Figure titles (annotations) that run past the figure's left or right edge.
TITLES_OUTSIDE = """(id) => {
  const figure = document.querySelector(`#${id} .js-plotly-plot`).getBoundingClientRect();
  return [...document.querySelectorAll(`#${id} .infolayer .annotation`)].map((g) => g.getBoundingClientRect())
    .filter((box) => box.left < figure.left - 1 || box.right > figure.right + 1).map((box) => [box.left, box.right]);
}"""

# Pairs of figure titles (annotations) on the same row whose boxes overlap.
OVERLAPPING_TITLES = """(id) => {
  const boxes = [...document.querySelectorAll(`#${id} .infolayer .annotation`)].map((g) => g.getBoundingClientRect());
  const overlaps = [];
  boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b, j) => {
    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) overlaps.push([i, i + 1 + j]);
  }));
  return overlaps;
}"""


def _open(browser, url: str, viewport: dict):
    tab = browser.new_page(viewport=viewport)
    tab.errors = []
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    tab.goto(url)
    tab.wait_for_selector("#schedule_plot .js-plotly-plot", timeout=180_000)  # slow when the machine is busy
    tab.wait_for_selector("#schedule_formulas .katex", timeout=60_000)
    return tab


@pytest.fixture(scope="module")
def projector(browser, app_url):
    """One page at 1280×720, shared in order: presentation on, a run, its fullscreen."""
    tab = _open(browser, app_url, PROJECTOR)
    yield tab
    tab.close()


def _presentation(page, on: bool) -> None:
    box = page.locator("#presentation input")
    if box.is_checked() != on:
        box.click()
    state = "" if on else ":not(.presentation)"
    page.wait_for_selector(f"body{state}", state="attached", timeout=10_000)
    page.wait_for_timeout(300)  # figures and formulas follow on the next animation frames


def test_text_grows_once_and_the_label_is_whole(projector):
    page = projector
    before = page.evaluate(FONT_SIZES, TEXT)
    assert None not in before.values(), before
    _presentation(page, True)
    after = page.evaluate(FONT_SIZES, TEXT)
    for name, size in before.items():
        assert after[name] / size == pytest.approx(PRESENTATION_SCALE, rel=0.03), f"{name}: {size} → {after[name]} px"

    label = page.locator("#presentation .label-text")
    assert label.inner_text() == "presentation mode"
    whole = """() => {
      const block = document.getElementById('presentation'), label = block.querySelector('.label-text');
      const outer = block.getBoundingClientRect(), inner = label.getBoundingClientRect();
      return inner.left >= outer.left - 1 && inner.right <= outer.right + 1
        && block.scrollWidth <= block.clientWidth + 1 && label.scrollWidth <= label.clientWidth + 1;
    }"""
    assert page.evaluate(whole)
    assert page.evaluate(CLIPPED_FORMULAS) == []

    _presentation(page, False)
    assert page.evaluate(FONT_SIZES, TEXT) == before


def test_no_formula_is_clipped_in_presentation_mode(projector):
    page = projector
    _presentation(page, True)
    page.get_by_role("tab", name="Posterior").click()
    page.wait_for_selector("#post_numbers:has-text('t = ')", timeout=60_000)
    page.wait_for_timeout(500)
    assert page.evaluate(CLIPPED_FORMULAS) == []
    page.get_by_role("tab", name="Schedules").click()
    page.wait_for_timeout(500)
    assert page.evaluate(CLIPPED_FORMULAS) == []
    page.screenshot(path=str(SHOTS / "presentation.png"))


def test_figures_grow_in_presentation_mode_and_return(projector):
    page = projector
    page.get_by_role("tab", name="Schedules").click()
    _presentation(page, False)
    own = page.evaluate(PLOT, "schedule_plot")
    _presentation(page, True)
    grown = "([id, font]) => document.querySelector(`#${id} .js-plotly-plot`)._fullLayout.font.size > font"
    page.wait_for_function(grown, arg=["schedule_plot", own["font"]], timeout=10_000)
    page.wait_for_timeout(300)
    large = page.evaluate(PLOT, "schedule_plot")
    assert large["font"] == pytest.approx(own["font"] * PRESENTATION_SCALE)
    assert large["height"] == pytest.approx(own["height"] * PRESENTATION_SCALE, abs=1)
    for size, grown_size in zip(own["annotations"], large["annotations"], strict=True):
        assert size <= grown_size <= size * PRESENTATION_SCALE + 1e-9  # subplot titles shrink back to clear each other
    assert page.evaluate(OVERLAPPING_TITLES, "schedule_plot") == []
    assert large["width"] == pytest.approx(large["container"], rel=0.05)

    _presentation(page, False)
    page.wait_for_function(
        "([id, font]) => document.querySelector(`#${id} .js-plotly-plot`)._fullLayout.font.size === font",
        arg=["schedule_plot", own["font"]],
        timeout=10_000,
    )
    page.wait_for_timeout(300)
    back = page.evaluate(PLOT, "schedule_plot")
    assert (back["font"], back["height"], back["annotations"]) == (own["font"], own["height"], own["annotations"])


def test_the_frame_picture_fills_its_column(projector):
    page = projector
    _presentation(page, True)
    page.get_by_role("tab", name="Reverse sampling").click()
    page.click("#show_controls input")  # presentation mode keeps the controls in a drawer
    _set_number(page, "steps", "20")
    _set_number(page, "batch", "16")
    page.click("#run")
    page.click("#show_controls input")
    page.wait_for_selector("#frame_text:has-text('Frame 20 of 20')", timeout=180_000)
    page.wait_for_timeout(500)
    picture = page.evaluate(FRAME_PICTURE)
    assert picture is not None
    assert picture["shown"] >= 0.97 * picture["container"] or picture["height_limited"], picture
    assert picture["right"] <= picture["container_right"] + 1, picture
    assert picture["rendering"] == "pixelated"
    assert page.evaluate(CLIPPED_FORMULAS) == []
    page.wait_for_timeout(500)  # the diagnostics figure, drawn by the run, grows on the next frames
    assert page.evaluate(OVERLAPPING_TITLES, "diagnostics") == []
    assert page.evaluate(TITLES_OUTSIDE, "diagnostics") == []
    page.evaluate("window.scrollTo(0, 0)")  # the stage: the frame comes first
    page.screenshot(path=str(SHOTS / "presentation_frame.png"))


def test_the_frame_picture_is_three_times_native_at_1280(projector):
    page = projector
    page.get_by_role("tab", name="Reverse sampling").click()
    page.wait_for_selector("#frame_text:has-text('Frame 20 of 20')", timeout=30_000)
    picture = page.evaluate(FRAME_PICTURE)
    assert picture["drawn"] >= 3 * picture["native"], picture


def test_fullscreen_fills_the_screen_and_the_keys_keep_stepping(projector):
    page = projector
    page.get_by_role("tab", name="Reverse sampling").click()
    page.wait_for_selector("#frame_text:has-text('Frame 20 of 20')", timeout=30_000)
    page.click("#frame_fullscreen_button")
    page.wait_for_function("() => document.fullscreenElement !== null", timeout=10_000)
    page.wait_for_timeout(300)
    view = page.evaluate(FULLSCREEN)
    assert view["id"] == "frame_fullscreen"
    assert (view["width"], view["height"]) == (PROJECTOR["width"], PROJECTOR["height"])
    width, height = view["drawn"]
    assert width == pytest.approx(view["box"][0], abs=2) or height == pytest.approx(view["box"][1], abs=2), view
    assert width >= 0.95 * PROJECTOR["width"] or height >= 0.8 * PROJECTOR["height"], view
    assert view["rendering"] == "pixelated"
    assert view["caption"].startswith("Frame 20 of 20")
    page.screenshot(path=str(SHOTS / "fullscreen.png"))

    page.keyboard.press("ArrowLeft")
    caption = "(text) => document.fullscreenElement && document.fullscreenElement.textContent.startsWith(text)"
    page.wait_for_function(caption, arg="Frame 19 of 20", timeout=30_000)
    page.keyboard.press("ArrowRight")
    page.wait_for_function(caption, arg="Frame 20 of 20", timeout=30_000)
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.fullscreenElement === null", timeout=10_000)

    page.locator("body").click(position={"x": 5, "y": 5})  # the focus leaves any text field
    page.keyboard.press("f")
    page.wait_for_function("() => document.fullscreenElement !== null", timeout=10_000)
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.fullscreenElement === null", timeout=10_000)


def test_a_pictures_own_fullscreen_fills_the_screen(projector):
    page = projector
    _presentation(page, False)
    page.get_by_role("tab", name="Reverse sampling").click()
    page.locator("#finals").hover()
    page.locator("#finals button[aria-label='Fullscreen']").click()
    page.wait_for_selector("#finals.fullscreen", timeout=10_000)
    page.wait_for_timeout(500)
    view = page.evaluate(FULLSCREEN)
    width, height = view["drawn"]
    assert width >= 0.95 * PROJECTOR["width"] or height >= 0.95 * PROJECTOR["height"], view
    assert view["rendering"] == "pixelated"
    page.keyboard.press("Escape")
    page.wait_for_selector("#finals.fullscreen", state="detached", timeout=10_000)
    assert page.errors == []


def test_a_figure_drawn_in_a_hidden_tab_fills_its_container(browser, app_url):
    """The run's diagnostics figure is drawn while the Schedules tab is in front; opened at 1920×1080 it spans its
    container (Plotly alone would keep the 700 px it fell back to while hidden)."""
    page = _open(browser, app_url, WIDE)
    try:
        page.get_by_role("tab", name="Reverse sampling").click()
        _set_number(page, "steps", "6")
        _set_number(page, "batch", "4")
        page.click("#run")
        page.get_by_role("tab", name="Schedules").click()
        finished = "() => (document.getElementById('frame_text') || {}).textContent.includes('Frame 6 of 6')"
        page.wait_for_function(finished, timeout=180_000)
        drawn = "() => { const f = document.querySelector('#diagnostics .js-plotly-plot'); return f && f._fullLayout; }"
        page.wait_for_function(drawn, timeout=30_000)
        page.get_by_role("tab", name="Reverse sampling").click()
        fills = """() => {
          const f = document.querySelector('#diagnostics .js-plotly-plot');
          const room = f.parentElement.getBoundingClientRect().width;
          return room > 1000 && Math.abs(f._fullLayout.width - room) <= 0.05 * room;
        }"""
        page.wait_for_function(fills, timeout=10_000)
        figure = page.evaluate(PLOT, "diagnostics")
        assert figure["width"] == pytest.approx(figure["container"], rel=0.05)
        assert page.errors == []
    finally:
        page.close()
