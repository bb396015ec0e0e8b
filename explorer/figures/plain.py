"""Plotly figures as the plain dict plotly.js reads, built without plotly.py's per-property validation.

`go.Figure` validates and deep-copies every property as it is set: about 60 ms of the 65 ms schedule handler went
there. A `PlainFigure` holds the same `{"data": [...], "layout": {...}}` that `go.Figure(...).to_json()` would send
(NumPy arrays become plotly.js typed arrays, the template is inlined), and `gr.Plot` calls its `to_json()`.
`validated()` builds the `go.Figure` from it, which raises on any property plotly does not know; `data` and
`layout` read that validated figure, so a `PlainFigure` can be inspected like a `go.Figure`.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from _plotly_utils.utils import plotlyjsShortTypes, to_typed_array_spec
from plotly.io.json import to_json_plotly
from plotly.subplots import make_subplots

TEMPLATE = "plotly_white"


@cache
def template(name: str = TEMPLATE) -> dict[str, Any]:
    """A named plotly.py template as the dict plotly.js reads (plotly.js knows no template names). Never mutate."""
    return pio.templates[name].to_plotly_json()


@cache
def colorscale(name: str) -> list[list]:
    """A named colour scale as plotly.py sends it: its own stops, which plotly.js's scale of that name may not match."""
    return [list(stop) for stop in go.Heatmap(colorscale=name).colorscale]


@cache
def _grid(rows: int, cols: int, titles: int, options: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    placeholders = [f"title {k}" for k in range(titles)]
    figure = make_subplots(rows=rows, cols=cols, subplot_titles=placeholders, **dict(options))
    layout = figure.to_plotly_json()["layout"]
    layout.pop("template", None)  # plotly's default; each figure names its own
    return layout


def subplot_layout(rows: int, cols: int, titles: list[str], **options: Any) -> dict[str, Any]:
    """make_subplots' layout (axes with their domains and anchors, titles as annotations) as a fresh dict.

    `options` are make_subplots' keyword arguments (spacing, shared axes). The grid is computed once per shape.
    """
    layout = copy.deepcopy(_grid(rows, cols, len(titles), tuple(sorted(options.items()))))
    for annotation, title in zip(layout.get("annotations", []), titles, strict=True):
        annotation["text"] = title
    return layout


def axis_suffix(panel: int) -> str:
    """Plotly's axis suffix of subplot `panel` (1-based): "" for the first (x, y), else its number (x2, y2)."""
    return "" if panel == 1 else str(panel)


def axis_names(layout: dict[str, Any], letter: str) -> list[str]:
    """The layout's axis keys for `letter` ("x" or "y"): xaxis, xaxis2, …"""
    return sorted((key for key in layout if key.startswith(f"{letter}axis")), key=lambda k: int(k[5:] or 1))


SHORT_TYPES = {np.dtype(name): short for name, short in plotlyjsShortTypes.items()}
NOT_ARRAYS = frozenset({"geojson", "layer", "layers", "range", "template"})  # plotly's skipped keys, and the template


def _typed_array(values: np.ndarray) -> Any:
    """plotly.js's typed-array spec of a NumPy array: the bytes in base64, as plotly.py sends them."""
    short = SHORT_TYPES.get(values.dtype)
    if short is None or values.ndim != 1 or values.size == 0:
        return to_typed_array_spec(values)  # plotly's own (int64 narrowing, shapes): slower, rarely needed here
    return {"dtype": short, "bdata": base64.b64encode(np.ascontiguousarray(values)).decode("ascii")}


def _encoded(value: Any) -> Any:
    """A copy of a figure tree with every NumPy array as a typed-array spec, as `go.Figure.to_dict` does.

    The template is left as it is: it holds no arrays, and it is the largest part of the tree."""
    if isinstance(value, dict):
        return {key: item if key in NOT_ARRAYS else _encoded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [item if isinstance(item, str | float | int) else _encoded(item) for item in value]
    if isinstance(value, np.ndarray):
        return _typed_array(value)
    return value


@dataclass(frozen=True, eq=False)
class PlainFigure:
    """A Plotly figure as plain data: `traces` (each a dict with its "type") and `layout` properties."""

    traces: list[dict[str, Any]]
    layout_properties: dict[str, Any] = field(default_factory=dict)

    def to_plotly_json(self) -> dict[str, Any]:
        """{"data": …, "layout": …} with typed arrays: what `go.Figure.to_dict()` gives for the same figure."""
        return {"data": _encoded(self.traces), "layout": _encoded(self.layout_properties)}

    def to_json(self) -> str:
        """The JSON that `gr.Plot` sends to the browser."""
        return to_json_plotly(self.to_plotly_json())

    def validated(self) -> go.Figure:
        """The same figure as a `go.Figure`: raises ValueError on any property plotly does not know."""
        return self._validated

    @cached_property
    def _validated(self) -> go.Figure:
        return go.Figure({"data": self.traces, "layout": self.layout_properties})

    @property
    def data(self) -> tuple:
        """The validated figure's traces (for inspection; building them costs what the plain figure saves)."""
        return self._validated.data

    @property
    def layout(self) -> go.Layout:
        """The validated figure's layout (for inspection)."""
        return self._validated.layout
