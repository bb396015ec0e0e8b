"""The one launch configuration: `python app.py`, a Space and the browser tests all start the app through `launch`.

Theme, the page's CSS and scripts (ui/browser: keys, presentation mode, fitting figures and formulas, the
fullscreen frame), the early fetch of Gradio's Plotly module (for the first plot), the upload cap, the queue and its
admission of model work are defined here once; Gradio 6 takes theme, css and head in `launch()`, not in `gr.Blocks()`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import Request
from fastapi.responses import JSONResponse
from gradio.route_utils import FnIndexInferError
from starlette.middleware import Middleware

from ui import admission, gate, progress_targets, sessions
from ui.common import running_on_space

TITLE = "Reverse-diffusion explorer"
# Waiting events of every kind together. Model work holds at most `admission.IN_ALL` (12) of these places, waiting or
# running, and at most `admission.PER_CLIENT` (2) per client; the rest stay free for the cheap views (30 users each
# waiting for one answer need 30).
QUEUE_SIZE = 64
MAX_FILE_SIZE = "5mb"  # uploads (a local x₀ image) beyond this are refused by Gradio with HTTP 413
SPACE_FILE_SIZE = 1  # bytes: on a Space nothing takes a file (no picture input), so /upload takes nothing
BROWSER = Path(__file__).parent / "browser"  # what runs in the page: its CSS and scripts, one concept a file
STYLES = ("page.css", "stage.css")  # stage.css after page.css: presentation mode's layout wins
# page.js first: the others follow it
SCRIPTS = ("page.js", "keys.js", "plots.js", "formulas.js", "fullscreen.js", "stage.js")
PRESENTATION_SCALE = 1.4  # presentation mode: every text size of the theme, and every figure's fonts, × this
TEXT_SIZES = ("text_xxs", "text_xs", "text_sm", "text_md", "text_lg", "text_xl", "text_xxl")
# Gradio's frontend build: its Plot component imports Plotly (4.6 MB of JavaScript) from this folder when it mounts
FRONTEND_ASSETS = Path(gr.__file__).parent / "templates" / "frontend" / "assets"


def presentation_css(look: gr.themes.Base) -> str:
    """Presentation mode's text sizes: the theme's own sizes × PRESENTATION_SCALE, set once on the root element while
    the body has the class `presentation`. Every text size on the page derives from these (KaTeX's formulas too), so
    text grows exactly once, with no compounding on nested elements; ui/browser/plots.js reads the same factor."""
    sizes = [f"--{name.replace('_', '-')}: calc({getattr(look, name)} * {PRESENTATION_SCALE});" for name in TEXT_SIZES]
    return "\n".join(
        [":root:has(> body.presentation) {", *sizes, "}", f":root {{ --presentation-scale: {PRESENTATION_SCALE}; }}"]
    )


def page_css(look: gr.themes.Base) -> str:
    """ui/browser/page.css, stage.css (presentation mode's layout) and the presentation sizes of `look`."""
    return "\n".join([*((BROWSER / name).read_text() for name in STYLES), presentation_css(look)])


def plotly_preload(assets: Path = FRONTEND_ASSETS) -> str:
    """A <link rel="modulepreload"> for each Plotly module of Gradio's frontend build (its name carries a content
    hash; none when the build has none). The browser fetches and compiles Plotly while the page is still being
    built, instead of once the first gr.Plot has mounted and asks for it (the first plot waited for that download);
    the Plot component's own import then finds the module ready (same URL, relative to the page's <base>)."""
    return "\n".join(
        f'<link rel="modulepreload" href="./assets/{path.name}">' for path in sorted(assets.glob("PlotlyPlot-*.js"))
    )


def page_head() -> str:
    """The preload of Plotly's module, then the page's scripts (ui/browser/*.js), one <script> each, in the order of
    SCRIPTS."""
    scripts = (f"<script>\n{(BROWSER / name).read_text()}</script>" for name in SCRIPTS)
    return "\n".join([plotly_preload(), *scripts])


def theme() -> gr.themes.Base:
    return gr.themes.Soft()


def configure_queue(demo: gr.Blocks) -> gr.Blocks:
    """The queue every launch uses: an explicit size (on ZeroGPU Gradio would otherwise force 1); no direct REST
    route past it (`api_open=False`: locally Gradio would otherwise run `/gradio_api/run/<name>` outside the queue,
    its concurrency limits and the admission); fair admission of model work (`ui.admission`); each event's
    progress shown on the components that show it, never on a layout block (`ui.progress_targets`)."""
    progress_targets.narrow(demo)
    demo.queue(max_size=QUEUE_SIZE, api_open=False)
    admission.install(demo)
    return demo


async def unknown_endpoint(request: Request, error: Exception) -> JSONResponse:
    """HTTP 404 for a call to an API name the app does not have (Gradio's own answer is a 500)."""
    return JSONResponse({"detail": "there is no such API endpoint (the API page lists them)"}, status_code=404)


def launch_options(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments for `demo.launch`: the server address from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
    (127.0.0.1:7860 by default), the look, the keyboard script, the upload cap (none on a Space: nothing there takes
    a file), a 404 for unknown API names, one sentence for a bad server-function call (`ui.gate.QuietErrors`) and
    bounded session state (`ui.sessions.SessionGate`);
    `overrides` win."""
    look = theme()
    options: dict[str, Any] = {
        "server_name": os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        "server_port": int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        "theme": look,
        "css": page_css(look),
        "head": page_head(),
        "max_file_size": SPACE_FILE_SIZE if running_on_space() else MAX_FILE_SIZE,
        "app_kwargs": {
            "exception_handlers": {FnIndexInferError: unknown_endpoint},
            "middleware": [Middleware(sessions.SessionGate), Middleware(gate.QuietErrors)],
        },
    }
    return {**options, **overrides}


def launch(demo: gr.Blocks, **overrides: Any) -> Any:
    """Start `demo` with the one configuration (tests pass server_port, prevent_thread_lock and quiet)."""
    return demo.launch(**launch_options(**overrides))
