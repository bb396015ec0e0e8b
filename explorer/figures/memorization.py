"""Figures of the Memorization view: twin samples from the same noise over their training sets, and the measured
curves against training-set size N.

    twins_figure(drawn, comparison)   four 2-D panels: twin a, twin b, the twins together, the exact denoisers
    curves_figure(curves)             copy fraction and twin agreement against N (log axis), from the measured JSON
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.figures.schedules import FONT
from explorer.memorization import COPY_FRACTION, TwinComparison
from explorer.models.twins import TwinSamples

COLOURS = {"a": "#1f77b4", "b": "#d62728", "exact": "#2ca02c", "chance": "#7f7f7f"}
MAX_TRAIN_DRAWN = 4096  # training examples drawn per half (evenly strided beyond that)
PANEL_TITLES = (
    "twin a over its training set a (grey lines: to the nearest example)",
    "twin b over its training set b",
    "both twins from the same noise (lines join each pair)",
    "exact denoiser of each half, same noise",
)


def _strided(points: np.ndarray, limit: int) -> np.ndarray:
    if len(points) <= limit:
        return points
    return points[np.unique(np.round(np.linspace(0, len(points) - 1, limit)).astype(np.int64))]


def _segments(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y of line segments start[i] → end[i] ([S, 2] each), separated by None gaps, for one scatter trace."""
    gap = np.full((len(start), 1), np.nan)
    xs = np.concatenate([start[:, :1], end[:, :1], gap], axis=1).ravel()
    ys = np.concatenate([start[:, 1:], end[:, 1:], gap], axis=1).ravel()
    return xs, ys


def _points(x: np.ndarray, name: str, colour: str, *, size: float, symbol: str = "circle", group: str = "", show=True):
    return go.Scatter(
        x=x[:, 0],
        y=x[:, 1],
        mode="markers",
        name=name,
        legendgroup=group or name,
        showlegend=show,
        marker={"size": size, "color": colour, "symbol": symbol, "line": {"width": 0}},
    )


def twins_figure(drawn: TwinSamples, comparison: TwinComparison) -> go.Figure:
    """The twins' samples (S of each, row s from the same noise) over their training sets, for 2-D data."""
    if drawn.model_a.shape[-1] != 2 or drawn.model_a.ndim != 2:
        raise ValueError(f"twins_figure draws 2-D points; got samples of shape {tuple(drawn.model_a.shape[1:])}")
    a, b = drawn.model_a.numpy(), drawn.model_b.numpy()
    train_a, train_b = drawn.train_a.numpy(), drawn.train_b.numpy()
    size = 9 if drawn.train_size <= 64 else 5 if drawn.train_size <= 1024 else 3
    figure = make_subplots(rows=2, cols=2, subplot_titles=PANEL_TITLES, horizontal_spacing=0.06, vertical_spacing=0.1)
    for col, (samples, train, other, nearest, half) in enumerate(
        ((a, train_a, train_b, comparison.nearest_own_a, "a"), (b, train_b, train_a, comparison.nearest_own_b, "b")),
        start=1,
    ):
        figure.add_trace(
            _points(
                _strided(other, MAX_TRAIN_DRAWN),
                "the other half's data",
                "#cccccc",
                size=size,
                group="other",
                show=col == 1,
            ),
            row=1,
            col=col,
        )
        figure.add_trace(
            _points(
                _strided(train, MAX_TRAIN_DRAWN),
                f"training set {half}",
                "black",
                size=size + 2,
                symbol="x",
                group=f"train {half}",
            ),
            row=1,
            col=col,
        )
        xs, ys = _segments(samples, train[nearest])
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": "#999999", "width": 1},
                name="to nearest example",
                legendgroup="nearest",
                showlegend=col == 1,
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
        figure.add_trace(_points(samples, f"twin {half} samples", COLOURS[half], size=6), row=1, col=col)
    xs, ys = _segments(a, b)
    figure.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            line={"color": "#9467bd", "width": 1},
            name="twin pair (same noise)",
            hoverinfo="skip",
        ),
        row=2,
        col=1,
    )
    figure.add_trace(_points(a, "twin a samples", COLOURS["a"], size=6, show=False), row=2, col=1)
    figure.add_trace(_points(b, "twin b samples", COLOURS["b"], size=6, show=False), row=2, col=1)
    if len(drawn.exact_a):
        exact_a, exact_b = drawn.exact_a.numpy(), drawn.exact_b.numpy()
        xs, ys = _segments(exact_a, exact_b)
        figure.add_trace(
            go.Scatter(
                x=xs, y=ys, mode="lines", line={"color": "#c7e9c0", "width": 1}, name="exact pair", hoverinfo="skip"
            ),
            row=2,
            col=2,
        )
        figure.add_trace(_points(exact_a, "exact denoiser of a", COLOURS["a"], size=7, symbol="diamond"), row=2, col=2)
        figure.add_trace(_points(exact_b, "exact denoiser of b", COLOURS["b"], size=7, symbol="diamond"), row=2, col=2)
    for row in (1, 2):
        for col in (1, 2):
            figure.update_xaxes(range=[-3, 3], row=row, col=col)
            figure.update_yaxes(
                range=[-2.5, 2.5], scaleanchor=f"x{'' if (row, col) == (1, 1) else 2 * row + col - 2}", row=row, col=col
            )
    figure.update_layout(
        height=900,
        font=FONT,
        margin={"l": 40, "r": 20, "t": 60, "b": 40},
        title=(
            f"N = {drawn.train_size} per twin: {comparison.copy_fraction:.0%} of samples copy (within "
            f"{COPY_FRACTION:g} × spacing), twins agree on {comparison.agreement:.0%}"
        ),
        legend={"orientation": "h", "y": -0.05},
    )
    return figure


def curves_figure(curves: dict, dataset: str) -> go.Figure:
    """Copy fraction and twin agreement against N for one data set, from `docs/data/memorization.json`'s entry."""
    sizes = curves["sizes"]
    figure = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            f"samples that copy a training example (within {COPY_FRACTION:g} × its spacing)",
            "twins closer to each other than to their nearest training examples",
        ),
    )
    lines = (
        (1, "copy_fraction", "twins (networks)", COLOURS["a"], "solid"),
        (1, "exact_copy_fraction", "exact denoiser of each half", COLOURS["exact"], "dash"),
        (1, "chance_copy_fraction", "fresh data (chance)", COLOURS["chance"], "dot"),
        (2, "agreement", "twins (networks)", COLOURS["a"], "solid"),
        (2, "exact_agreement", "exact denoisers", COLOURS["exact"], "dash"),
    )
    for col, key, name, colour, dash in lines:
        figure.add_trace(
            go.Scatter(
                x=sizes,
                y=curves[key],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=col == 1 or key == "agreement",
                line={"color": colour, "dash": dash},
            ),
            row=1,
            col=col,
        )
    figure.update_xaxes(type="log", title_text="training examples per twin, N")
    figure.update_yaxes(range=[-0.02, 1.02], tickformat=".0%")
    figure.update_layout(
        height=380, font=FONT, margin={"l": 50, "r": 20, "t": 60, "b": 50}, title=f"{dataset}: measured against N"
    )
    return figure
