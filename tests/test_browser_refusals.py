"""A model job the server does not start is said on the page, in Debian's Chromium: fair admission (`ui.admission`)
answers the queue/join with 429 and its sentence, and Gradio's client shows that sentence in an error toast."""

from __future__ import annotations

from test_browser import VIEWPORT, _watch, pytestmark  # noqa: F401 (the marks)

from ui import admission

REFUSED_LOG = "Failed to load resource: the server responded with a status of 429 (Too Many Requests)"


def test_a_refused_model_job_says_why_on_the_page(browser, app_url, monkeypatch):
    page = browser.new_page(viewport=VIEWPORT)
    errors = _watch(page)
    try:
        page.goto(app_url)
        page.wait_for_selector("#schedule_table table", timeout=60_000)  # the page has loaded
        page.get_by_role("tab", name="Parameterizations").click()
        page.wait_for_selector("#table_plot .js-plotly-plot", timeout=240_000)  # the tab's own job is done
        toasts = page.locator("[data-testid='toast-body']")
        before = [toast.text_content() for toast in toasts.all()]
        sentence = admission.too_many(admission.PER_CLIENT)

        async def at_its_limit(client, alive):  # the server's own refusal of a visitor holding its 2 model jobs
            raise admission.Refused(sentence)

        monkeypatch.setattr(admission.LEDGER, "admit", at_its_limit)
        page.locator("#compare").click()
        page.locator("[data-testid='toast-body']", has_text=sentence).wait_for(state="visible", timeout=30_000)
        assert not any(sentence in text for text in before), before  # it is this press's refusal
        assert errors and set(errors) == {REFUSED_LOG}, (errors, before)  # the console's line for a refused request
    finally:
        page.close()
