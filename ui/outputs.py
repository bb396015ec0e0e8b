"""Named outputs: a handler returns (or yields) a frozen dataclass, and the view adapts it to its components.

No handler returns a positional tuple or pads one with `gr.skip()`: a field left None changes nothing on the page.
A view names its components by the dataclass's field names (`Outputs`), and `Outputs.adapt` turns the handler into
the function Gradio calls, which answers a dict {component: value} holding only what changed.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr


class Shown:
    """Base of a view's output dataclass: `updates()` is {field name: value} of the fields that are not None; a
    subclass overrides it where a field becomes a component update (a slider's range, a radio's choices)."""

    def updates(self) -> dict[str, Any]:
        return {
            field.name: value
            for field in dataclasses.fields(self)  # type: ignore[arg-type]
            if (value := getattr(self, field.name)) is not None
        }


class Outputs:
    """An event's output components, each named by the field of `Shown` it shows."""

    def __init__(self, **components: gr.components.Component) -> None:
        self.components = components

    @property
    def list(self) -> list[gr.components.Component]:
        """The components, for the event's `outputs`."""
        return list(self.components.values())

    def gradio(self, shown: Shown) -> Any:
        """What Gradio takes for `shown`: only the updates of this event's components (the others it does not
        output are left to other events)."""
        updates = shown.updates()
        if len(self.components) == 1:
            (name,) = self.components
            return updates.get(name, gr.skip())
        changes = {component: updates[name] for name, component in self.components.items() if name in updates}
        return changes or gr.skip()

    def adapt(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """The function Gradio calls: `handler` with each of its results (streamed ones too) through `gradio`.
        Its name, docstring and signature are the handler's (the API names it the same)."""
        if inspect.isgeneratorfunction(handler):

            @functools.wraps(handler)
            def streaming(*args: Any, **kwargs: Any):
                for shown in handler(*args, **kwargs):
                    yield self.gradio(shown)

            return streaming

        @functools.wraps(handler)
        def answering(*args: Any, **kwargs: Any):
            return self.gradio(handler(*args, **kwargs))

        return answering
