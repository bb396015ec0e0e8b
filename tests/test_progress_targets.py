"""Progress targets: each event refreshes the loading status of at most one component, never of a layout block
(the page refreshes every target of every event that ever ran on each status message of any event)."""

from __future__ import annotations

import gradio as gr
from gradio.blocks import BlockContext

from ui.progress_targets import SINK_ID, narrow, targets


def test_narrow_keeps_one_component_and_never_a_layout_block():
    with gr.Blocks() as demo:
        button = gr.Button()
        with gr.Column() as column:
            first, second = gr.Markdown(), gr.Plot()
        state = gr.State()
        chosen = gr.Markdown()
        button.click(lambda: None, None, [column, first, second])
        button.click(lambda: None, None, [second, first], show_progress="hidden")
        button.click(lambda: None, None, [first, chosen], show_progress_on=[chosen])
        button.click(lambda: None, None, [state])
    before = {index: list(function.outputs) for index, function in demo.fns.items()}
    narrow(demo)
    got = targets(demo)
    assert [got[i] for i in sorted(got)] == [[first], [second], [chosen], [state]]
    assert {index: list(function.outputs) for index, function in demo.fns.items()} == before  # outputs unchanged


def test_the_app_refreshes_few_loading_statuses():
    import app  # configure_queue narrowed its events

    everything = targets(app.demo)
    assert not [block for blocks in everything.values() for block in blocks if isinstance(block, BlockContext)]
    assert max(len(blocks) for blocks in everything.values()) == 1
    union = {block._id for blocks in everything.values() for block in blocks}
    assert len(union) <= len(everything) // 3  # before: 110 components, the whole page's tabs among them
    sink = [block for block in app.demo.blocks.values() if getattr(block, "elem_id", None) == SINK_ID]
    hidden = [index for index, function in app.demo.fns.items() if function.show_progress == "hidden"]
    assert len(sink) == 1 and all(everything[index] == sink for index in hidden)
