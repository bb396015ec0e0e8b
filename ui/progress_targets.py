"""Narrow every event's progress targets to the components that show its progress.

Gradio's page keeps a loading status for every component that was ever the progress target of an event that ran
(`show_progress_on`, else all of the event's outputs), and never forgets one. Every status message of every event
(each streamed yield of a run, each progress tick) then refreshes all of them: for each, it reads the component's
data (a structured clone), and for a layout block, the data of every component inside it. The page-load event
returns the `gr.Tabs` (to open the tab a link names) and sixty controls, so each status message walked the whole
page: about 3,800 structured clones per message, 530,000 in a 400-step run, in main-thread tasks up to 130 ms on an
idle 2-core machine.

Each refresh also looks its component up by a depth-first search of the page's tree, so the fewer and the
earlier the targets, the cheaper a status message. `narrow(demo)` sets, on each event that has not chosen its own
`show_progress_on`:

    show_progress    progress targets after
    "hidden"         the page's sink (`sink()`: an empty, invisible component, first in the tree), shared by all
    otherwise        its first output that is a component (its main figure or picture: where the spinner shows)

Layout blocks (tabs, rows, columns, accordions) and states are never targets. Nothing else about an event changes.
"""

from __future__ import annotations

import gradio as gr
from gradio.blocks import BlockContext

SINK_ID = "progress_sink"


def sink() -> gr.Markdown:
    """The component that events showing no progress keep their loading status on; create it first in the page."""
    return gr.Markdown("", visible=False, elem_id=SINK_ID)


def _leaves(blocks) -> list:
    """The outputs that are components (not layout blocks, not states, which show nothing)."""
    return [block for block in blocks if not isinstance(block, (BlockContext, gr.State))]


def narrow(demo: gr.Blocks) -> gr.Blocks:
    """Set each event's progress targets as the module says (hidden ones on the sink when `demo` has one); returns
    `demo`."""
    shared = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == SINK_ID][:1]
    for function in demo.fns.values():
        if function.show_progress_on is not None:
            continue
        leaves = _leaves(function.outputs)[:1]
        if function.show_progress == "hidden" and shared:
            leaves = shared
        if leaves or any(isinstance(block, BlockContext) for block in function.outputs):
            function.show_progress_on = leaves or None
    return demo


def targets(demo: gr.Blocks) -> dict[int, list]:
    """{event id: its progress targets} as the page will register them (`show_progress_on`, else the outputs)."""
    return {index: list(function.show_progress_on or function.outputs) for index, function in demo.fns.items()}
