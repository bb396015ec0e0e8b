"""The launch configuration's head: the Plotly module that Gradio's Plot component imports is preloaded, and the
page then fetches it once, before even the Plot component's own module (which would otherwise ask for it)."""

from __future__ import annotations

import re

import pytest
from app_fixtures import CHROMIUM

from ui.launch import FRONTEND_ASSETS, page_head

# `import(`./PlotlyPlot-<hash>.js`)` in the Plot component's module: what the preload must name
PLOT_IMPORT = re.compile(r"import\(\W\./(PlotlyPlot-[\w-]+\.js)\W\)")
PRELOAD = re.compile(r'<link rel="modulepreload" href="\./assets/([^"]+)">')

# When the page asked for the Plotly module and for the Plot component's module (performance.now(), ms).
TIMES = """() => {
  const asked = (pattern) => performance.getEntriesByType('resource')
    .filter((e) => pattern.test(e.name.split('/').pop())).map((e) => e.startTime);
  return {plotly: asked(/^PlotlyPlot-/), component: asked(/^Plot-/)};
}"""


def test_the_head_preloads_the_plotly_module_that_the_plot_component_imports():
    imported = {name for plot in FRONTEND_ASSETS.glob("Plot-*.js") for name in PLOT_IMPORT.findall(plot.read_text())}
    assert imported, "Gradio's Plot component no longer imports a PlotlyPlot module: the preload names nothing"
    assert set(PRELOAD.findall(page_head())) == imported
    assert all((FRONTEND_ASSETS / name).is_file() for name in imported)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")
def test_the_page_fetches_plotly_once_and_before_the_plot_component(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(app_url)
        page.wait_for_selector("#schedule_plot .main-svg", timeout=120_000)
        times = page.evaluate(TIMES)
    finally:
        context.close()
    assert len(times["plotly"]) == 1 and len(times["component"]) == 1
    assert times["plotly"][0] < times["component"][0]
