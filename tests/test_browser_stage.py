"""Presentation mode as a stage, at 1280×720 (a projector) in Debian's Chromium through Playwright.

A talk link with `present=1` shows the frame first, whole and at least half the screen high, without scrolling;
→ pressed the moment the frame's label appears moves one frame (kept until the player holds the frames); F and the
arrows work after a click on a slider, not inside a text box; the prose waits behind **notes**, the controls behind
**controls**, and with the notes shown the text has grown once and no formula is clipped.
"""

from __future__ import annotations

import pytest
from app_fixtures import CHROMIUM
from test_browser import _watch
from test_browser_presentation import CLIPPED_FORMULAS, FONT_SIZES

from ui.launch import PRESENTATION_SCALE

PROJECTOR = {"width": 1280, "height": 720}
TALK = "?tab=sampling&model=digits-eps&steps=30&batch=16&frame=5&present=1"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]

# The frame's picture on screen (the player's canvas, or the picture streamed during a run), and the page's scroll.
FRAME_BOX = """() => {
  const picture = [...document.querySelectorAll('#frame canvas, #frame img')].find((e) => e.getClientRects().length);
  if (!picture) return null;
  const box = picture.getBoundingClientRect();
  return {tag: picture.tagName, top: box.top, bottom: box.bottom, height: box.height, scroll: window.scrollY,
          scrollable: document.documentElement.scrollHeight > window.innerHeight};
}"""
SHOWN = "(selector) => { const e = document.querySelector(selector); return !!e && e.getClientRects().length > 0; }"


@pytest.fixture(scope="module")
def talk(browser, app_url):
    """A talk link at 1280×720: → is pressed the moment the frame's label ("Frame 5 of 30") appears."""
    page = browser.new_page(viewport=PROJECTOR)
    page.errors = _watch(page)
    page.goto(app_url + TALK)
    page.wait_for_function(
        "() => (document.getElementById('frame_text') || {}).textContent?.includes('Frame 5 of 30')",
        timeout=180_000,
        polling=10,
    )
    page.held_at_press = page.evaluate("() => !!(window.explorerFrames && window.explorerFrames.data)")
    page.keyboard.press("ArrowRight")
    yield page
    page.close()


def test_a_key_pressed_as_the_label_appears_moves_one_frame(talk):
    talk.wait_for_selector("#frame canvas[data-frame='6']", timeout=60_000)
    talk.wait_for_timeout(500)
    assert talk.locator("#frame canvas").get_attribute("data-frame") == "6"  # one frame, not more
    talk.wait_for_selector("#frame_text:has-text('Frame 6 of 30')", timeout=10_000)


def test_the_frame_is_first_whole_and_half_the_screen_high(talk):
    talk.wait_for_selector("#frame canvas[data-frame='6']", timeout=60_000)
    talk.wait_for_timeout(300)
    box = talk.evaluate(FRAME_BOX)
    assert box is not None and box["tag"] == "CANVAS", box
    assert box["scroll"] == 0, box
    assert box["top"] >= 0 and box["bottom"] <= PROJECTOR["height"], box
    assert box["height"] >= 360 and box["height"] >= PROJECTOR["height"] / 2, box
    for hidden in ("#tabs .notes", "#model", "#run"):  # prose and controls wait behind their toggles
        assert not talk.evaluate(SHOWN, hidden), hidden
    assert talk.evaluate(SHOWN, "#next_frame")  # the one line that steps the frames stays


def test_keys_work_after_a_click_on_a_slider_but_not_in_a_text_box(talk):
    talk.wait_for_selector("#frame canvas[data-frame='6']", timeout=60_000)
    talk.locator("#play_fps input[type=range]").click()
    speed = talk.locator("#play_fps input[type=number]").input_value()
    talk.keyboard.press("ArrowRight")
    talk.wait_for_selector("#frame canvas[data-frame='7']", timeout=10_000)
    assert talk.locator("#play_fps input[type=number]").input_value() == speed  # the slider did not move
    talk.keyboard.press("f")
    talk.wait_for_function("() => document.fullscreenElement !== null", timeout=10_000)
    talk.keyboard.press("ArrowLeft")
    caption = "(text) => document.fullscreenElement && document.fullscreenElement.textContent.startsWith(text)"
    talk.wait_for_function(caption, arg="Frame 6 of 30", timeout=10_000)
    talk.keyboard.press("Escape")
    talk.wait_for_function("() => document.fullscreenElement === null", timeout=10_000)

    talk.click("#show_controls input")  # the drawer opens: the controls are there
    talk.wait_for_function(SHOWN, arg="#typed_model", timeout=10_000)
    box = talk.locator("#typed_model textarea, #typed_model input").first
    box.click()
    box.press("f")
    box.press("ArrowRight")
    talk.wait_for_timeout(300)
    assert talk.evaluate("() => document.fullscreenElement") is None
    assert talk.locator("#frame canvas").get_attribute("data-frame") == "6"
    assert box.input_value() == "f"
    box.fill("")
    talk.click("#show_controls input")
    talk.wait_for_function(f"() => !({SHOWN})('#typed_model')", timeout=10_000)
    assert talk.errors == []


def test_notes_show_the_prose_grown_once_with_no_formula_clipped(talk):
    talk.get_by_role("tab", name="Schedules").click()
    talk.wait_for_selector("#schedule_formulas .katex", timeout=60_000)
    assert not talk.evaluate(SHOWN, "#tabs .notes")
    stage = talk.evaluate("() => document.getElementById('schedule_plot').getBoundingClientRect().top")
    assert stage < PROJECTOR["height"] / 4  # the plot comes first
    talk.click("#show_notes input")
    talk.wait_for_function(SHOWN, arg="#tabs .notes", timeout=10_000)
    talk.wait_for_timeout(500)
    text = {"a paragraph": "#tabs .notes p", "a formula": "#schedule_formulas .katex"}
    grown = talk.evaluate(FONT_SIZES, text)
    talk.click("#presentation input")
    talk.wait_for_selector("body:not(.presentation)", state="attached", timeout=10_000)
    talk.wait_for_timeout(300)
    own = talk.evaluate(FONT_SIZES, text)
    for name, size in own.items():
        assert grown[name] / size == pytest.approx(PRESENTATION_SCALE, rel=0.03), f"{name}: {size} → {grown[name]} px"
    assert talk.evaluate(SHOWN, "#tabs .notes") and talk.evaluate(SHOWN, "#T1")  # all back outside presentation
    assert not talk.evaluate(SHOWN, "#show_notes")
    talk.click("#presentation input")
    talk.wait_for_selector("body.presentation", state="attached", timeout=10_000)
    talk.wait_for_timeout(500)
    assert talk.evaluate(CLIPPED_FORMULAS) == []
    talk.click("#show_notes input")
    assert talk.errors == []
