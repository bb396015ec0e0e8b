"""Reverse-diffusion explorer: a Gradio app on the `explorer` package (layout and wiring only; no maths here).

`python app.py` starts it with the one launch configuration of `ui.launch` (GRADIO_SERVER_NAME and
GRADIO_SERVER_PORT are honoured); a Space runs this file too; tests import `demo` and call `ui.launch.launch`.
Typed local folders are accepted only when the server listens on loopback, or with `--allow-local-folders`.
"""

from __future__ import annotations

import argparse

import gradio as gr

from ui import parameterizations, posterior, restore, sampling, schedules
from ui.common import MODEL_WORK, VIEW_WORK
from ui.launch import TITLE, configure_queue, launch, launch_options
from ui.models import allow_local_folders
from ui.state import forget_session

CACHE_SWEEP = (600, 1800)  # every 10 min, delete the files this app put in Gradio's cache over 30 min ago

with gr.Blocks(title=TITLE, delete_cache=CACHE_SWEEP) as demo:
    with gr.Row():
        gr.Markdown(f"# {TITLE}\nHow diffusion models run backwards, with exact maths beside real models.")
        large = gr.Checkbox(label="large type (presentation)", value=False, elem_id="presentation", scale=0)
    large.change(None, large, None, js="(on) => { document.body.classList.toggle('presentation', on); }")
    url_frame = gr.State(None)  # frame=N in the URL: run on load, then show frame N
    with gr.Tabs(elem_id="tabs") as tabs:
        with gr.Tab("Schedules", id="schedules"):
            schedules_tab = schedules.build()
        with gr.Tab("Posterior", id="posterior") as posterior_page:
            posterior_tab = posterior.build(schedules_tab.first)
        with gr.Tab("Reverse sampling", id="sampling"):
            sampling_tab = sampling.build(schedules_tab.first, url_frame)
        with gr.Tab("Parameterizations", id="parameterizations"):
            parameterizations.build()

    # The Posterior reads schedule 1: opening its tab redraws it, so it never shows an older schedule's numbers.
    posterior_page.select(
        posterior_tab.update, posterior_tab.inputs, posterior_tab.outputs, api_visibility="private", **VIEW_WORK
    )
    run_controls = sampling_tab.controls
    demo.load(
        restore.restore,
        None,
        [
            tabs,
            schedules_tab.first.family,
            schedules_tab.controls.components["t"],
            run_controls["model"],
            run_controls["seed"],
            run_controls["steps"],
            url_frame,
            large,
        ],
        api_visibility="private",
    ).then(
        schedules_tab.update, schedules_tab.inputs, schedules_tab.outputs, api_visibility="private", **VIEW_WORK
    ).then(
        posterior_tab.update, posterior_tab.inputs, posterior_tab.outputs, api_visibility="private", **VIEW_WORK
    ).then(
        sampling_tab.open_frame,
        sampling_tab.open_inputs,
        sampling_tab.outputs,
        api_visibility="private",
        show_progress="hidden",
        **MODEL_WORK,
    )
    demo.unload(forget_session)

configure_queue(demo)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--allow-local-folders",
        action="store_true",
        help="accept typed local checkpoint folders even when the server listens beyond loopback (never on a Space)",
    )
    args = parser.parse_args(argv)
    allow_local_folders(launch_options()["server_name"], args.allow_local_folders)
    sampling.sweep_exports()  # what an earlier process (or a kill -9) left behind
    launch(demo)


if __name__ == "__main__":
    main()
