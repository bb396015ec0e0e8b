"""Named endpoints: every API parameter is called by the control it sets, with that control's default.

A control's name is its URL parameter (`ui.restore`): its `elem_id`, except the frame slider, which a link writes as
`frame`. Gradio names an endpoint's parameters after the positional parameters of the function it calls, so the
function an event calls gets a signature of those names (`named_event`); the components go to the event as a list
in the same order. `gradio_client` then takes keyword arguments: `client.predict(steps=8, api_name="/run")`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gradio as gr

URL_NAMES = {"frame_slider": "frame"}  # elem_id → URL parameter, where the two differ
EXTRAS = ("request", "progress")  # what Gradio fills in itself, passed through when the handler takes it
PYTHON_TYPES: tuple[tuple[type, type], ...] = (
    (gr.Checkbox, bool),
    (gr.Slider, float),
    (gr.Number, float),
    (gr.Dropdown, str),
    (gr.Radio, str),
    (gr.Textbox, str),
)


def url_name(component: gr.components.Component) -> str:
    """The name a control has in links and at the API; ValueError for a component without an elem_id."""
    if not component.elem_id:
        raise ValueError(f"{type(component).__name__} {getattr(component, 'label', '')!r} has no elem_id to name it")
    return URL_NAMES.get(component.elem_id, component.elem_id)


def python_type(component: gr.components.Component) -> Any:
    """The Python type of a control's value (what the API docs show)."""
    return next((kind for base, kind in PYTHON_TYPES if isinstance(component, base)), Any)


def extras_of(handler: Callable[..., Any]) -> tuple[str, ...]:
    """Which of `request` and `progress` the handler takes."""
    parameters = inspect.signature(handler).parameters
    return tuple(name for name in EXTRAS if name in parameters)


def named_event(
    named: Mapping[str, gr.components.Component],
    call: Callable[..., Any],
    *,
    like: Callable[..., Any],
    extras: Sequence[str] = (),
) -> Callable[..., Any]:
    """The function an event calls with the components `named.values()` (a list, in that order) as inputs: its
    parameters are the names of `named`, with each component's value as default, then `extras` (request, progress).
    It calls `call({component: value}, **extras)`; it streams when `like` (the handler, whose name and docstring it
    takes) is a generator function."""
    parameters = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=c.value, annotation=python_type(c))
        for name, c in named.items()
    ]
    if "request" in extras:
        parameters.append(
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request)
        )
    if "progress" in extras:
        parameters.append(inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()))
    signature = inspect.Signature(parameters)

    def arguments(args: tuple, kwargs: dict) -> tuple[dict, dict]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = bound.arguments
        return {c: values[name] for name, c in named.items()}, {name: values[name] for name in extras}

    if inspect.isgeneratorfunction(like):

        def event(*args: Any, **kwargs: Any):
            given, more = arguments(args, kwargs)
            yield from call(given, **more)

    else:

        def event(*args: Any, **kwargs: Any):
            given, more = arguments(args, kwargs)
            return call(given, **more)

    event.__signature__ = signature  # type: ignore[attr-defined]
    event.__annotations__ = {p.name: p.annotation for p in parameters if p.annotation is not inspect.Parameter.empty}
    event.__name__, event.__qualname__, event.__doc__ = like.__name__, like.__qualname__, like.__doc__
    return event


def named(handler: Callable[..., Any], inputs: Sequence[gr.components.Component]) -> Callable[..., Any]:
    """`handler(*values of inputs)` as an event function whose parameters are the inputs' URL names; pass the same
    `inputs` (a list) to the event."""
    components = {url_name(c): c for c in inputs}
    if len(components) != len(inputs):
        raise ValueError(f"{handler.__name__}: two inputs share a name")

    def call(given: dict, **extras: Any) -> Any:
        return handler(*(given[c] for c in inputs), **extras)

    return named_event(components, call, like=handler, extras=extras_of(handler))
