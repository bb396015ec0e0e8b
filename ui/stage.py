"""Presentation mode as a stage: the toggles for the notes and the controls drawer.

In presentation mode (`present=1`, or the checkbox) the open view's main picture or plot comes first and fills the
screen below the tabs; the prose (Markdown with the class `notes`) waits behind **notes**, the controls behind
**controls** (ui/browser/stage.css), and ui/browser/stage.js sizes the frame to the room left on screen. Each toggle
sets a class on the page's body, in the browser only; outside presentation mode both are hidden and change nothing.
"""

from __future__ import annotations

import gradio as gr

NOTES_CLASS = "show-notes"
CONTROLS_CLASS = "show-controls"


def _toggle(css_class: str) -> str:
    return f"(on) => {{ document.body.classList.toggle('{css_class}', on); }}"


def build() -> tuple[gr.Checkbox, gr.Checkbox]:
    """The two toggles, laid out where they are called (the page's header), each wired to its body class."""
    notes = gr.Checkbox(label="notes", value=False, elem_id="show_notes", min_width=80)
    drawer = gr.Checkbox(label="controls", value=False, elem_id="show_controls", min_width=80)
    for box, css_class in ((notes, NOTES_CLASS), (drawer, CONTROLS_CLASS)):
        box.change(None, box, None, js=_toggle(css_class), api_visibility="private", show_progress="hidden")
    return notes, drawer
