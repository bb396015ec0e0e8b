"""Reverse-diffusion explorer: a Gradio app on the `explorer` package (UI only; the maths lives in explorer).

Run locally with `python app.py` (honours GRADIO_SERVER_NAME and GRADIO_SERVER_PORT); a Hugging Face Space
imports the module-level `demo`.
"""

from __future__ import annotations

import os

import gradio as gr

from ui import parameterizations, posterior, restore, sampling, schedules
from ui.common import MODEL_WORK, VIEW_WORK

TITLE = "Reverse-diffusion explorer"
QUEUE_SIZE = 32
MAX_FILE_SIZE = "5mb"  # uploads (a local x₀ image) beyond this are refused by Gradio with HTTP 413
CSS = """
.presentation { font-size: 150% !important; }
.presentation .prose, .presentation label, .presentation span { font-size: 120% !important; }
footer { display: none !important; }
"""
THEME = gr.themes.Soft()

with gr.Blocks(title=TITLE) as demo:
    with gr.Row():
        gr.Markdown(f"# {TITLE}\nHow diffusion models run backwards, with exact maths beside real models.")
        large = gr.Checkbox(label="large type (presentation)", value=False, elem_id="presentation", scale=0)
    large.change(None, large, None, js="(on) => { document.body.classList.toggle('presentation', on); }")
    with gr.Tabs(elem_id="tabs") as tabs:
        with gr.Tab("Schedules", id="schedules"):
            schedule_view = schedules.build()
        with gr.Tab("Posterior", id="posterior"):
            posterior_view = posterior.build(schedule_view["inputs"][:6])
        with gr.Tab("Reverse sampling", id="sampling"):
            sampling_view = sampling.build(schedule_view["inputs"][:6])
        with gr.Tab("Parameterizations", id="parameterizations"):
            parameterizations.build()

    url_frame = gr.State(None)  # frame=N in the URL: run on load, then show frame N
    demo.load(
        restore.restore,
        None,
        [
            tabs,
            schedule_view["family1"],
            schedule_view["t"],
            sampling_view["model"],
            sampling_view["seed"],
            sampling_view["steps"],
            url_frame,
            large,
        ],
        api_visibility="private",
    ).then(
        schedules.update_schedules,
        schedule_view["inputs"],
        schedule_view["outputs"],
        api_visibility="private",
        **VIEW_WORK,
    ).then(
        posterior.update_posterior,
        posterior_view["inputs"],
        posterior_view["outputs"],
        api_visibility="private",
        **VIEW_WORK,
    ).then(
        sampling.open_frame,
        [url_frame, *sampling_view["run_inputs"]],
        sampling_view["outputs"],
        api_visibility="private",
        show_progress="hidden",
        **MODEL_WORK,
    )

    demo.unload(sampling.forget_session)

demo.queue(max_size=QUEUE_SIZE)


if __name__ == "__main__":
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        theme=THEME,
        css=CSS,
        head=sampling.KEYBOARD_JS,
        max_file_size=MAX_FILE_SIZE,
    )
