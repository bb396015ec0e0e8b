"""Reverse-diffusion explorer: a Gradio app on the `explorer` package (layout and wiring only; no maths here).

`python app.py` starts it with the one launch configuration of `ui.launch` (GRADIO_SERVER_NAME and
GRADIO_SERVER_PORT are honoured); a Space runs this file too; tests import `demo` and call `ui.launch.launch`.
Typed local folders are accepted only when the server listens on loopback, or with `--allow-local-folders`.
"""

from __future__ import annotations

import argparse

import gradio as gr

from ui import (
    bound,
    cloud,
    exports,
    memorization,
    parameterizations,
    posterior,
    progress_targets,
    restore,
    sampling,
    schedules,
    stage,
)
from ui.common import MODEL_WORK, VIEW_WORK
from ui.launch import TITLE, configure_queue, launch, launch_options
from ui.models import allow_local_folders
from ui.state import forget_session

CACHE_SWEEP = (600, 1800)  # every 10 min, delete the files this app put in Gradio's cache over 30 min ago

# Presentation mode: the page's CSS and scripts (ui/browser) follow the body's class; the frame player redraws its
# panels in two rows where that makes them larger.
PRESENTATION_JS = """(on) => {
  document.body.classList.toggle('presentation', on);
  if (window.explorerFrames && window.explorerFrames.draw) { window.explorerFrames.draw(); }
}"""

with gr.Blocks(title=TITLE, delete_cache=CACHE_SWEEP) as demo:
    progress_targets.sink()  # first on the page: where events that show no progress keep their loading status
    with gr.Row(elem_id="page_head"):
        gr.Markdown(
            f"# {TITLE}\nHow diffusion models run backwards, with exact maths beside real models.",
            elem_classes="notes",
        )
        with gr.Column(scale=0, min_width=260, elem_id="page_tools"):
            large = gr.Checkbox(label="presentation mode", value=False, elem_id="presentation")
            toggles = stage.build()  # notes and controls: shown in presentation mode only
            link_button = gr.Button("Copy link to this view", size="sm", elem_id="copy_link")
            link = gr.Textbox(show_label=False, interactive=False, elem_id="link", placeholder="a link to this view")
    large.change(None, large, None, js=PRESENTATION_JS)
    url_frame = gr.State(None)  # frame=N in the URL: run on load, then show frame N
    current_tab = gr.State(restore.TABS[0])
    with gr.Tabs(elem_id="tabs") as tabs:
        with gr.Tab("Schedules", id="schedules"):
            schedules_tab = schedules.build()
        with gr.Tab("Posterior", id="posterior") as posterior_page:
            posterior_tab = posterior.build(schedules_tab.first)
        with gr.Tab("Reverse sampling", id="sampling"):
            sampling_tab = sampling.build(schedules_tab.first, url_frame)
            cloud.build()
        with gr.Tab("Parameterizations", id=parameterizations.TAB_ID) as parameterizations_page:
            parameterizations_tab = parameterizations.build()
        with gr.Tab("Bound", id=bound.TAB_ID) as bound_page:
            bound_tab = bound.build()
        with gr.Tab("Memorization", id=memorization.TAB_ID) as memorization_page:
            memorization_tab = memorization.build()
    tabs.select(restore.tab_selected, None, current_tab, api_visibility="private", show_progress="hidden")

    # The Posterior reads schedule 1: opening its tab redraws it, so it never shows an older schedule's numbers.
    posterior_page.select(
        posterior_tab.update, posterior_tab.inputs, posterior_tab.outputs, api_visibility="private", **VIEW_WORK
    )

    # Every control with an elem_id is a URL parameter of that name (ui.restore).
    groups = (schedules_tab.controls, *schedules_tab.slots, posterior_tab.controls, sampling_tab.controls)
    groups += (sampling_tab.controls.step,)
    everything = [c for group in groups for c in group.components.values()]
    controls = {c.elem_id: c for c in everything if c.elem_id and not isinstance(c, gr.Image)}
    controls |= {c.elem_id: c for c in parameterizations_tab.controls}
    controls |= {c.elem_id: c for c in bound_tab.controls}
    controls |= {c.elem_id: c for c in memorization_tab.controls}
    controls |= {c.elem_id: c for c in toggles}
    restore_page = restore.make_restore(controls)
    link_button.click(
        restore.make_link(controls, current_tab, sampling_tab.frame, large),
        {*controls.values(), current_tab, sampling_tab.frame, large},
        link,
        api_visibility="private",
        show_progress="hidden",
    ).then(None, link, link, js=restore.COPY_LINK_JS)

    page_state = [tabs, current_tab, url_frame, large]
    restored = demo.load(
        restore_page, None, [*page_state, *controls.values()], api_visibility="private", show_progress="hidden"
    )
    sampling_tab.model_box.after(restored)  # the line and prompt box of a model the link names
    loading = (
        restored.then(
            schedules_tab.open, schedules_tab.inputs, schedules_tab.outputs, api_visibility="private", **VIEW_WORK
        )
        .then(posterior_tab.update, posterior_tab.inputs, posterior_tab.outputs, api_visibility="private", **VIEW_WORK)
        .then(
            sampling_tab.open_frame,
            sampling_tab.open_inputs,
            sampling_tab.outputs,
            api_visibility="private",
            show_progress="hidden",
            **MODEL_WORK,
        )
    )
    sampling_tab.then_frames(loading)  # a talk link's run steps in the page at once
    # The Parameterizations tab computes when it opens (on a link that opens on it, after that link's run).
    paper_tab = parameterizations_tab
    parameterizations_page.select(
        parameterizations.open_tab,
        paper_tab.open_inputs,
        paper_tab.open_outputs,
        api_visibility="private",
        **MODEL_WORK,
    )
    opened = loading.then(
        parameterizations.open_if_shown,
        [current_tab, *paper_tab.open_inputs],
        paper_tab.open_outputs,
        api_visibility="private",
        **MODEL_WORK,
    )
    # The Bound tab computes when it opens, like the Parameterizations tab; on a page load after that tab's check, so
    # the load holds one model job at a time (a tab opened meanwhile is the client's second, within its admission).
    bound_page.select(
        bound.show_bound, bound_tab.open_inputs, bound_tab.open_outputs, api_visibility="private", **MODEL_WORK
    )
    bound_opened = opened.then(
        bound.open_bound_if_shown,
        [current_tab, *bound_tab.open_inputs],
        bound_tab.open_outputs,
        api_visibility="private",
        **MODEL_WORK,
    )
    # The Memorization tab too: twins sampled at the chosen N, the curves measured against N.
    memorization_page.select(
        memorization.open_memorization,
        memorization_tab.open_inputs,
        memorization_tab.open_outputs,
        api_visibility="private",
        **MODEL_WORK,
    )
    bound_opened.then(  # after the Bound tab's: one model job at a time per page load
        memorization.open_memorization_if_shown,
        [current_tab, *memorization_tab.open_inputs],
        memorization_tab.open_outputs,
        api_visibility="private",
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
    exports.sweep_exports()  # what an earlier process (or a kill -9) left behind
    launch(demo)


if __name__ == "__main__":
    main()
