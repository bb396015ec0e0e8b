"""Figures of the Memorization view: twin samples from the same noise over their training sets, and the measured
curves against training-set size N.

    twins_figure(drawn, comparison)   2-D points: four panels (twin a, twin b, the twins together, the exact
                                      denoisers); digits: a table of pictures, one column per noise
    curves_figure(curves)             copy fraction and twin agreement against N (log axis), from the measured JSON
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.subplots import make_subplots

from explorer.figures.images import labelled_table, png_data_url, to_uint8, upscale, with_caption
from explorer.figures.schedules import FONT
from explorer.memorization import COPY_FRACTION, SLOPE_SIZES, TwinComparison, distance_slopes, power_text
from explorer.models.twins import TwinSamples

COLOURS = {"a": "#1f77b4", "b": "#d62728", "exact": "#2ca02c", "chance": "#7f7f7f", "own": "#9467bd"}
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


def _points(
    x: np.ndarray,
    name: str,
    colour: str,
    *,
    size: float,
    symbol: str = "circle",
    group: str = "",
    show=True,
    text: list[str] | None = None,
) -> go.Scatter:
    return go.Scatter(
        x=x[:, 0],
        y=x[:, 1],
        mode="markers",
        name=name,
        legendgroup=group or name,
        showlegend=show,
        marker={"size": size, "color": colour, "symbol": symbol, "line": {"width": 0}},
        text=text,
        hovertemplate="%{text}<extra></extra>" if text is not None else None,
    )


def _lines(start: np.ndarray, end: np.ndarray, name: str, colour: str, *, dash: str = "solid", show=True):
    """One trace of segments start[i] → end[i] ([S, 2] each)."""
    xs, ys = _segments(start, end)
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines",
        line={"color": colour, "width": 1, "dash": dash},
        name=name,
        legendgroup=name,
        showlegend=show,
        hoverinfo="skip",
    )


def _hover(comparison: TwinComparison, half: str) -> list[str]:
    """Per-sample hover text: its distances to its twin and to the nearest example of each half."""
    own, other = (comparison.own_a, comparison.other_a) if half == "a" else (comparison.own_b, comparison.other_b)
    other_half = "b" if half == "a" else "a"
    return [
        f"twin {half}, noise {s}<br>‖a − b‖ = {comparison.twin[s]:.4f}<br>nearest in {half} (own): {own[s]:.4f}"
        f"<br>nearest in {other_half}: {other[s]:.4f}"
        for s in range(len(own))
    ]


def twins_figure(drawn: TwinSamples, comparison: TwinComparison) -> go.Figure:
    """The twins' samples (S of each, row s from the same noise) over their training sets. 2-D data: each sample
    joined to its nearest example in its own half (grey) and in the other half (dotted); hover for the distances.
    Pictures [S, C, H, W]: `digit_twins_figure`."""
    if drawn.model_a.ndim == 4:
        return digit_twins_figure(drawn, comparison)
    if drawn.model_a.shape[-1] != 2 or drawn.model_a.ndim != 2:
        raise ValueError(
            f"twins_figure draws 2-D points or pictures; got samples of shape {tuple(drawn.model_a.shape[1:])}"
        )
    a, b = drawn.model_a.numpy(), drawn.model_b.numpy()
    train = {"a": drawn.train_a.numpy(), "b": drawn.train_b.numpy()}
    size = 9 if drawn.train_size <= 64 else 5 if drawn.train_size <= 1024 else 3
    figure = make_subplots(rows=2, cols=2, subplot_titles=PANEL_TITLES, horizontal_spacing=0.06, vertical_spacing=0.1)
    panels = (
        (a, "a", "b", comparison.nearest_own_a, comparison.nearest_other_a),
        (b, "b", "a", comparison.nearest_own_b, comparison.nearest_other_b),
    )
    for col, (samples, half, other, own_index, other_index) in enumerate(panels, start=1):
        first = col == 1
        other_points = _strided(train[other], MAX_TRAIN_DRAWN)
        own_points = _strided(train[half], MAX_TRAIN_DRAWN)
        traces = [
            _points(other_points, "the other half's data", "#cccccc", size=size, group="other", show=first),
            _points(own_points, f"training set {half}", "black", size=size + 2, symbol="x"),
            _lines(samples, train[half][own_index], "to nearest example, own half", "#999999", show=first),
            _lines(
                samples, train[other][other_index], "to nearest example, other half", "#ff9896", dash="dot", show=first
            ),
            _points(samples, f"twin {half} samples", COLOURS[half], size=6, text=_hover(comparison, half)),
        ]
        for trace in traces:
            figure.add_trace(trace, row=1, col=col)
    figure.add_trace(_lines(a, b, "twin pair (same noise)", "#9467bd"), row=2, col=1)
    figure.add_trace(_points(a, "twin a", COLOURS["a"], size=6, show=False, text=_hover(comparison, "a")), row=2, col=1)
    figure.add_trace(_points(b, "twin b", COLOURS["b"], size=6, show=False, text=_hover(comparison, "b")), row=2, col=1)
    if len(drawn.exact_a):
        exact_a, exact_b = drawn.exact_a.numpy(), drawn.exact_b.numpy()
        figure.add_trace(_lines(exact_a, exact_b, "exact pair", "#c7e9c0"), row=2, col=2)
        figure.add_trace(_points(exact_a, "exact denoiser of a", COLOURS["a"], size=7, symbol="diamond"), row=2, col=2)
        figure.add_trace(_points(exact_b, "exact denoiser of b", COLOURS["b"], size=7, symbol="diamond"), row=2, col=2)
    for index in range(1, 5):  # equal scales on every panel: x1/y1 … x4/y4
        suffix = "" if index == 1 else str(index)
        figure.layout[f"xaxis{suffix}"].update(range=[-3, 3])
        figure.layout[f"yaxis{suffix}"].update(range=[-2.5, 2.5], scaleanchor=f"x{suffix}")
    figure.update_layout(
        height=900,
        font=FONT,
        margin={"l": 40, "r": 20, "t": 60, "b": 110},  # drawn once: room for legend and labels
        title=_title(drawn, comparison),
        legend={"orientation": "h", "y": -0.05},
    )
    return figure


def _title(drawn: TwinSamples, comparison: TwinComparison) -> str:
    return (
        f"N = {drawn.train_size} per twin: {comparison.copy_fraction:.0%} of samples copy (within "
        f"{COPY_FRACTION:g} × spacing), twins agree on {comparison.agreement:.0%}"
    )


DIGIT_COLUMNS = 8  # noises shown in the digits table
DIGIT_SCALE = 5  # 16×16 digits drawn at 80×80


def _tiles(images: torch.Tensor, captions: list[str]) -> list[Image.Image]:
    """Pictures [S, C, H, W] in [−1, 1] as upscaled tiles, each with its caption in a band under it."""
    pictures = to_uint8(images)
    return [
        with_caption(upscale(_gray(picture), DIGIT_SCALE), caption, size=12)
        for picture, caption in zip(pictures, captions, strict=True)
    ]


def _gray(tile: np.ndarray) -> Image.Image:
    return Image.fromarray(tile[..., 0] if tile.shape[-1] == 1 else tile)


def digit_twins_figure(drawn: TwinSamples, comparison: TwinComparison, columns: int = DIGIT_COLUMNS) -> go.Figure:
    """The first `columns` noises of digit twins [S, 1, H, W] as a table of pictures: each twin's sample over its
    nearest training example in its own half (captions: Euclidean distances in pixel units of [−1, 1]), and the
    exact denoiser of each half from the same noise."""
    shown = min(columns, len(drawn.model_a))
    c = comparison
    own_a_index, own_b_index = c.nearest_own_a[:shown], c.nearest_own_b[:shown]
    copy = lambda flags, s: " copy" if flags[s] else ""  # noqa: E731
    rows = [
        ("twin a", _tiles(drawn.model_a[:shown], [f"a–b {c.twin[s]:.2f}" for s in range(shown)])),
        (
            "its nearest in a (own half)",
            _tiles(drawn.train_a[own_a_index], [f"d {c.own_a[s]:.2f}{copy(c.copies_a, s)}" for s in range(shown)]),
        ),
        ("twin b (same noise)", _tiles(drawn.model_b[:shown], [f"a–b {c.twin[s]:.2f}" for s in range(shown)])),
        (
            "its nearest in b (own half)",
            _tiles(drawn.train_b[own_b_index], [f"d {c.own_b[s]:.2f}{copy(c.copies_b, s)}" for s in range(shown)]),
        ),
    ]
    if len(drawn.exact_a):
        gap = (drawn.exact_a[:shown] - drawn.exact_b[:shown]).flatten(1).norm(dim=1)
        rows += [
            ("exact denoiser of a", _tiles(drawn.exact_a[:shown], [f"a–b {g:.2f}" for g in gap.tolist()])),
            ("exact denoiser of b", _tiles(drawn.exact_b[:shown], [f"a–b {g:.2f}" for g in gap.tolist()])),
        ]
    labels = [f"noise {s}" + (" · agree" if c.agrees[s] else "") for s in range(shown)]
    picture = labelled_table(rows, labels)
    figure = go.Figure(go.Image(source=png_data_url(picture), hoverinfo="skip"))
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False, scaleanchor="x")
    figure.update_layout(
        height=picture.height + 90,
        font=FONT,
        margin={"l": 10, "r": 10, "t": 70, "b": 10},
        title=_title(drawn, comparison) + "<br><sup>a–b: distance between the twins' samples; d: to the nearest "
        "training example of the twin's own half (pixels in [−1, 1], 256 of them)</sup>",
    )
    return figure


def curves_figure(curves: dict, dataset: str) -> go.Figure:
    """Against N, for one data set (`docs/data/memorization.json`'s entry): copy fraction, own-to-other distance
    ratio, twin agreement, and the median distances between the twins and to the nearest own example (log-log, with
    their exponents over the largest N)."""
    sizes = curves["sizes"]
    figure = make_subplots(
        rows=2,
        cols=2,
        vertical_spacing=0.2,
        subplot_titles=(
            f"samples that copy a training example<br>(within {COPY_FRACTION:g} × its spacing)",
            "twins closer to each other than<br>to their nearest training examples",
            "median distance to own half ÷ to other half<br>(1: no preference for its own data)",
            f"median distances: twins apart, and to<br>the nearest own example (powers: {SLOPE_SIZES} largest N)",
        ),
    )
    ratio = np.asarray(curves["median_own_distance"]) / np.asarray(curves["median_other_distance"])
    slopes = distance_slopes(curves)

    def exponent(key: str) -> str:  # the power of N fitted over the largest sizes
        return f" ∝ N<sup>{power_text(slopes[key])}</sup>" if slopes else ""

    twin, own = "median_twin_distance", "median_own_distance"
    lines = (  # (row, col, values, name, colour, dash, in the legend)
        (1, 1, curves["copy_fraction"], "twins (networks)", COLOURS["a"], "solid", True),
        (1, 1, curves["exact_copy_fraction"], "exact denoiser of each half", COLOURS["exact"], "dash", True),
        (1, 1, curves["chance_copy_fraction"], "fresh data (chance)", COLOURS["chance"], "dot", True),
        (1, 2, curves["agreement"], "twins (networks)", COLOURS["a"], "solid", False),
        (1, 2, curves["exact_agreement"], "exact denoiser of each half", COLOURS["exact"], "dash", False),
        (2, 1, ratio, "twins (networks)", COLOURS["a"], "solid", False),
        (2, 2, curves[twin], "‖a − b‖" + exponent(twin), COLOURS["a"], "solid", True),
        (2, 2, curves[own], "to nearest own" + exponent(own), COLOURS["own"], "dot", True),
    )
    for row, col, values, name, colour, dash, legend in lines:
        figure.add_trace(
            go.Scatter(
                x=sizes,
                y=values,
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=legend,
                line={"color": colour, "dash": dash},
            ),
            row=row,
            col=col,
        )
    figure.update_xaxes(type="log", dtick=1, title_text="training examples per twin, N")  # ticks at powers of 10
    figure.update_yaxes(range=[-0.02, 1.02], tickformat=".0%", row=1, col=1)
    figure.update_yaxes(range=[-0.02, 1.02], tickformat=".0%", row=1, col=2)
    figure.update_yaxes(range=[0, 1.1], row=2, col=1)
    figure.update_yaxes(type="log", dtick=1, row=2, col=2)
    figure.update_layout(
        height=720,
        font=FONT,
        margin={"l": 50, "r": 240, "t": 100, "b": 55},  # drawn once: room for the legend on the right
        title=f"{dataset}: measured against N",
    )
    return figure
