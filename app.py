"""Reverse-diffusion explorer: a Gradio app on the `explorer` package (layout and wiring only; no maths here).

`python app.py` starts it with the one launch configuration of `ui.launch` (GRADIO_SERVER_NAME and
GRADIO_SERVER_PORT are honoured); a Space runs this file too; tests import `demo` and call `ui.launch.launch`.
"""

from __future__ import annotations

import gradio as gr

from ui import parameterizations, posterior, restore, sampling, schedules
from ui.common import MODEL_WORK, VIEW_WORK
from ui.launch import TITLE, configure_queue, launch
from ui.state import forget_session

with gr.Blocks(title=TITLE) as demo:
    with gr.Row():
        gr.Markdown(f"# {TITLE}\nHow diffusion models run backwards, with exact maths beside real models.")
        large = gr.Checkbox(label="large type (presentation)", value=False, elem_id="presentation", scale=0)
    large.change(None, large, None, js="(on) => { document.body.classList.toggle('presentation', on); }")
    url_frame = gr.State(None)  # frame=N in the URL: run on load, then show frame N
    with gr.Tabs(elem_id="tabs") as tabs:
        with gr.Tab("Schedules", id="schedules"):
            schedules_tab = schedules.build()
        with gr.Tab("Posterior", id="posterior"):
            posterior_tab = posterior.build(schedules_tab.first)
        with gr.Tab("Reverse sampling", id="sampling"):
            sampling_tab = sampling.build(schedules_tab.first, url_frame)
        with gr.Tab("Parameterizations", id="parameterizations"):
            parameterizations.build()

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


if __name__ == "__main__":
    launch(demo)
