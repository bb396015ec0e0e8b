"""A hostile link in Chromium: URL values that hold HTML never render as HTML, and nothing they name is fetched.

The toasts that say a URL parameter was ignored render their text as HTML (Gradio's toast), so a link once put an
`<img>` that the page fetched, a link, a form and a fixed overlay over the page. Now the toast names the parameter
and why it was ignored, never its value, and its text is escaped.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

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
