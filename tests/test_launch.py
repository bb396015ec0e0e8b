"""The launch configuration's head: the Plotly module that Gradio's Plot component imports is preloaded, and the
page then fetches it once, before even the Plot component's own module (which would otherwise ask for it); the
modules and stylesheets of the app's components are preloaded too, each one the page fetches, and fetched once."""

from __future__ import annotations

import collections
import re

import pytest
from app_fixtures import CHROMIUM

from ui.launch import FRONTEND_ASSETS, component_files, component_types, page_head

# `import(`./PlotlyPlot-<hash>.js`)` in the Plot component's module: what the preload must name
PLOT_IMPORT = re.compile(r"import\(\W\./(PlotlyPlot-[\w-]+\.js)\W\)")
PRELOAD = re.compile(r'<link rel="modulepreload" href="\./assets/([^"]+)">')
STYLESHEET = re.compile(r'<link rel="stylesheet" crossorigin href="\./assets/([^"]+)">')
# every component type the frontend's core module has loaders for (`plot:{base:()=>…,component:()=>…}`)
TYPES = re.compile(r"[{,](\w+):\{(?:base|example|component):\(\)=>")

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


def app_head() -> str:
    import app

    return page_head(component_types(app.demo))


def test_the_plot_type_preloads_the_plot_component_and_its_stylesheets():
    files = component_files(["plot"])
    plot_component = {name for name in files if (FRONTEND_ASSETS / name).read_text().count("PlotlyPlot-")}
    assert plot_component and all(name.startswith(("Index-", "Plot-")) for name in plot_component)
    assert any(name.endswith(".css") for name in files)
    assert all((FRONTEND_ASSETS / name).is_file() for name in files)
    assert component_files(["no-such-type"]) == []


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")
def test_the_preloaded_component_modules_are_the_ones_the_page_fetches_each_once(browser, app_url):
    head = app_head()
    preloaded = set(PRELOAD.findall(head)) | set(STYLESHEET.findall(head))
    core = next(FRONTEND_ASSETS.glob("core-*.js")).read_text()
    component_assets = set(component_files(set(TYPES.findall(core))))
    fetched: collections.Counter[str] = collections.Counter()
    failed: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.on("request", lambda request: fetched.update([request.url.split("?")[0].rsplit("/", 1)[-1]]))
        page.on("response", lambda response: response.status >= 400 and failed.append(response.url))
        page.goto(app_url)
        page.wait_for_selector("#schedule_plot .main-svg", timeout=120_000)
    finally:
        context.close()
    assert not failed
    assert len(preloaded) > 10
    assert {name: fetched[name] for name in preloaded if fetched[name] != 1} == {}
    assert {name for name in fetched if name in component_assets} <= preloaded
