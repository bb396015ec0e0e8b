"""The model box under the Run controls: a line about the chosen model, and the conditioning controls shown only for
models that take them. Nothing here loads a model: the line says what the catalogue (or a loaded model) knows."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer.models.device import pick_device
from explorer.validation import check_text
from ui.common import VIEW_WORK, user_errors
from ui.controls import RunControls
from ui.models import CONDITIONING_CONTROLS, conditioning_controls, describe, measured_seconds
from ui.outputs import Outputs, Shown
from ui.values import RunValues


@user_errors
def model_info(model: str, typed: str) -> str:
    """The model box's line about the chosen model (catalogue facts, or the loaded model's, and the measured
    speed); nothing is loaded. A reference that is refused is said in the line itself (see `model_changed`)."""
    values = RunValues(model=check_text("model", model, 200), typed=check_text("typed model", typed, 200))
    if not values.ref:
        return ""
    try:
        device = str(pick_device())
        return describe(values.ref, measured_seconds(values.ref, device), device)
    except ValueError as refusal:  # the user's own text: escaped, never rendered as HTML
        return f"Not loaded: {html.escape(str(refusal))}"


@dataclass(frozen=True)
class ModelBox(Shown):
    """The model box's line, and which conditioning controls (by name, `CONDITIONING_CONTROLS`) it shows."""

    line: str
    shown: frozenset[str]

    def updates(self) -> dict:
        controls = {name: gr.update(visible=name in self.shown) for name in CONDITIONING_CONTROLS}
        return {"line": self.line, "box": gr.Accordion(visible=bool(self.shown)), **controls}


@user_errors
def model_changed(model: str, typed: str) -> ModelBox:
    """After the model box changes: its line (`model_info`) and the conditioning controls shown for this model. A
    refused reference shows nothing but the line that says why: no toast, so typing several bad ids in a row piles
    nothing up (Run refuses it once, by name). Nothing loads."""
    line = model_info(model, typed)
    values = RunValues(model=model, typed=typed)
    try:
        shown = conditioning_controls(values.ref) if values.ref else frozenset()
    except ValueError:
        shown = frozenset()
    return ModelBox(line, frozenset(shown))


@dataclass(frozen=True)
class ModelBoxView:
    """The model line and the outputs `model_changed` updates (the line, the conditioning box and its controls)."""

    info: gr.Markdown
    outputs: Outputs
    inputs: list  # the model dropdown and the typed id

    def after(self, event: Any) -> Any:
        """Refresh the model box once `event` is over (a page load that set the model from a link: the line and the
        prompt box of the model the link names, as typing it would). Nothing loads. Returns the new event."""
        return event.then(
            self.outputs.adapt(model_changed),
            self.inputs,
            self.outputs.list,
            api_visibility="private",
            show_progress="hidden",
            **VIEW_WORK,  # cheap (no model loads): with the views' workers, beside the load's own chain
        )


def build(controls: RunControls) -> ModelBoxView:
    """The model line, laid out where it is called (under the Run controls) and wired to the model box; returned
    with its outputs so that a run can say what loaded and a page load can refresh it (`ModelBoxView.after`)."""
    model, typed = controls["model"], controls["typed"]
    info = gr.Markdown(model_info(model.value, ""), elem_id="model_info")
    shown = {name: controls[name] for name in CONDITIONING_CONTROLS}
    outputs = Outputs(line=info, box=controls.conditioning_box, **shown)
    gr.on(
        triggers=[model.change, typed.blur, typed.submit],
        fn=outputs.adapt(model_changed),
        inputs=[model, typed],
        outputs=outputs.list,
        api_visibility="private",
        show_progress="hidden",
    )
    return ModelBoxView(info, outputs, [model, typed])
