"""A hostile link in Chromium: URL values that hold HTML never render as HTML, and nothing they name is fetched.

The toasts that say a URL parameter was ignored render their text as HTML (Gradio's toast), so a link once put an
`<img>` that the page fetched, a link, a form and a fixed overlay over the page. Now the toast names the parameter
and why it was ignored, never its value, and its text is escaped.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from app_fixtures import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]

PROBE = "probe-image-7f3a"  # the image a hostile value asks for: no request may name it
HOSTILE = {
    "tab": f"<img id=pwn1 src=/{PROBE}.png>",
    "family1": "<a id=pwn2 href=//x.example>go</a>",
    "sampler": "<form id=pwn3><input></form>",
    "model": '<div id=pwn4 style="position:fixed;inset:0">',
    "steps": f"<img id=pwn5 src=/{PROBE}-2.png>",
    f"<img id=pwn6 src=/{PROBE}-3.png>": "1",  # an unknown name is input too
    '<div id=pwn7 style="position:fixed">': "1",
}


def test_html_in_link_values_renders_as_text_and_fetches_nothing(browser, app_url):
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    asked: list[str] = []
    tab.on("request", lambda request: asked.append(request.url))
    try:
        tab.goto(app_url + "?" + urlencode(HOSTILE))
        tab.wait_for_selector("#schedule_plot .js-plotly-plot", timeout=60_000)
        toasts = tab.locator("[data-testid='toast-body']")
        toasts.first.wait_for(timeout=30_000)
        tab.wait_for_timeout(1500)  # every warning of the load is up
        text = " ".join(toasts.all_inner_texts())
        for name in ("tab", "family1", "sampler", "model", "steps"):
            assert f"URL parameter {name} ignored" in text, text
        assert "2 URL parameters were ignored: not the name of a control of this page" in text, text
        assert "pwn" not in text and "<" not in text, text  # values and unknown names are never echoed
        for index in range(1, 8):
            assert tab.locator(f"#pwn{index}").count() == 0, f"#pwn{index} was rendered as HTML"
        inside = "[data-testid='toast-body']"
        assert tab.locator(f"{inside} img, {inside} a, {inside} form, {inside} input").count() == 0
        fixed = tab.evaluate(
            "() => [...document.querySelectorAll('div[style]')].filter(d => d.style.position === 'fixed').length"
        )
        assert fixed == 0
        assert not [url for url in asked if PROBE in urlsplit(url).path], asked  # the page's own URL names it
    finally:
        tab.close()


# --- Copy link: the whole view, prompts and presentation mode included, into a new page ---------------------------

TYPED = "explorer-test/tiny-sd-eps"  # a Hub id: never downloaded here (the link waits for Run)
PROMPT = f'a <b id=pwn8>red</b> fox & <img id=pwn9 src=/{PROBE}-4.png onerror="document.title=1">'
NEGATIVE = "<form id=pwn10><input></form> blurry"
LINK = "#link textarea, #link input"
TEXT = "#{} textarea, #{} input"


def _clipboard_page(browser):
    """A page allowed to write and read the clipboard (what a visitor's browser grants a page over https or on
    localhost), with its requests recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    tab = context.new_page()
    tab.asked = []
    tab.on("request", lambda request: tab.asked.append(request.url))
    return tab


def _copy(tab, wanted: str) -> str:
    """Press Copy link, wait for a link holding `wanted` and the box's "copied"; the link, as the clipboard holds it."""
    tab.click("#copy_link")
    tab.wait_for_function(
        "(wanted) => document.querySelector('#link textarea, #link input').value.includes(wanted)", arg=wanted
    )
    tab.wait_for_selector("#link_state:text-is('copied')", timeout=10_000)
    url = tab.locator(LINK).first.input_value()
    assert tab.evaluate("navigator.clipboard.readText()") == url
    return url


def _open_conditioning(tab) -> None:
    tab.get_by_text("prompt, class label and latent size").click(timeout=30_000)
    tab.wait_for_selector(TEXT.format("prompt", "prompt"), timeout=30_000)


def test_copy_link_with_a_prompt_and_presentation_mode_round_trips_into_a_new_page(browser, app_url):
    tab = _clipboard_page(browser)
    try:
        tab.goto(app_url)
        tab.wait_for_selector("#schedule_plot .js-plotly-plot", timeout=60_000)
        assert _copy(tab, app_url) == app_url  # a page as it opened links to itself, without a stray "?"
        tab.get_by_role("tab", name="Reverse sampling").click()
        typed = tab.locator(TEXT.format("typed_model", "typed_model"))
        typed.fill(TYPED)
        typed.press("Enter")  # the model box shows the prompt boxes for a Hub id
        _open_conditioning(tab)
        tab.locator(TEXT.format("prompt", "prompt")).fill(PROMPT)
        tab.locator(TEXT.format("negative_prompt", "negative_prompt")).fill(NEGATIVE)
        tab.locator("#presentation input").check()
        tab.wait_for_selector("body.presentation")
        url = _copy(tab, "present=1")
        query = dict(parse_qsl(urlsplit(url).query))
        assert query["prompt"] == PROMPT and query["negative_prompt"] == NEGATIVE and query["typed_model"] == TYPED
        assert query["tab"] == "sampling" and query["present"] == "1" and query["frame"] == "1"

        fresh = _clipboard_page(browser)
        fresh.goto(url)
        fresh.wait_for_selector("body.presentation", timeout=60_000)
        fresh.wait_for_selector("#frame_text:has-text('press Run')", timeout=120_000)  # a Hub model waits for Run
        fresh.locator("#show_controls input").check()  # presentation mode keeps the controls in their drawer
        fresh.wait_for_selector(f"#model_info:has-text('{TYPED}')", timeout=60_000)  # the line names the link's model
        _open_conditioning(fresh)
        assert fresh.locator(TEXT.format("prompt", "prompt")).input_value() == PROMPT  # as text, to the character
        assert fresh.locator(TEXT.format("negative_prompt", "negative_prompt")).input_value() == NEGATIVE
        assert fresh.locator(TEXT.format("typed_model", "typed_model")).input_value() == TYPED
        for index in (8, 9, 10):
            assert fresh.locator(f"#pwn{index}").count() == 0, f"#pwn{index} was rendered as HTML"
        assert fresh.title() != "1"  # no handler of the prompt ran
        assert not [seen for seen in fresh.asked if PROBE in urlsplit(seen).path], fresh.asked
        assert "Frame 1 of" not in fresh.locator("#frame_text").inner_text()  # nothing ran on open
        again = dict(parse_qsl(urlsplit(_copy(fresh, "present=1")).query))
        assert again == query | {"show_controls": "true"}  # the same view, with the drawer opened here
        fresh.context.close()
    finally:
        tab.context.close()


def test_copy_link_keeps_presentation_mode_and_the_frame_of_a_run(browser, app_url):
    tab = _clipboard_page(browser)
    try:
        tab.goto(app_url)
        tab.get_by_role("tab", name="Reverse sampling").click(timeout=120_000)
        for name, value in (("steps", "6"), ("batch", "2")):
            box = tab.locator(f"#{name} input[type=number]")
            box.fill(value)
            box.press("Enter")
        tab.click("#run")
        tab.wait_for_selector("#frame canvas[data-frame='6'][data-total='6']", timeout=240_000)
        tab.locator("#presentation input").check()
        tab.keyboard.press("ArrowLeft")
        tab.keyboard.press("ArrowLeft")
        tab.wait_for_selector("#frame_text:has-text('Frame 4 of 6')", timeout=30_000)
        url = _copy(tab, "frame=4")
        query = dict(parse_qsl(urlsplit(url).query))
        assert query == {"tab": "sampling", "steps": "6", "batch": "2", "frame": "4", "present": "1"}, query

        fresh = _clipboard_page(browser)
        fresh.goto(url)
        fresh.wait_for_selector("#frame canvas[data-frame='4'][data-total='6']", timeout=240_000)  # run, then frame 4
        assert fresh.locator("body.presentation").count() == 1
        fresh.context.close()
    finally:
        tab.context.close()


# --- One error toast: six bad ids in a row ---------------------------------------------------------------------------

VISIBLE_ERRORS = """() => [...document.querySelectorAll("[data-testid='toast-text'].error")]
  .filter((text) => text.getClientRects().length > 0).map((text) => text.innerText)"""


def test_six_bad_ids_give_at_most_one_error_toast_and_the_model_line_says_the_current_one(browser, app_url):
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        tab.goto(app_url)
        tab.get_by_role("tab", name="Reverse sampling").click(timeout=120_000)
        tab.wait_for_selector("#model_info:has-text('digits-eps')", timeout=60_000)
        typed = tab.locator(TEXT.format("typed_model", "typed_model"))
        for index in range(6):
            bad = f"bad id {index}"
            typed.fill(bad)
            typed.press("Enter")
            tab.wait_for_selector(f"#model_info:has-text('{bad}')", timeout=30_000)
            tab.click("#run")  # Run refuses it: one error toast
            tab.wait_for_function(f"() => ({VISIBLE_ERRORS})().some((text) => text.includes({bad!r}))", timeout=30_000)
            shown = tab.evaluate(VISIBLE_ERRORS)
            assert len(shown) == 1 and bad in shown[0], shown  # the newest only, never a pile of stale ones
            line = tab.locator("#model_info").inner_text()
            assert bad in line and "digits-eps" not in line and "Error" not in line, line
        assert tab.locator(".toast-count:visible").count() == 0  # no "Error (6)"
        for control in ("steps", "eta", "batch"):  # the controls the pile covered are reachable
            box = tab.locator(f"#{control} input[type=number]")
            box.click(timeout=5_000)
    finally:
        tab.close()
