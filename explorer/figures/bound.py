"""The variational bound as a figure and a table: cumulative bits/dim against paper t, per model and variance choice.

One panel per split (the models' training data, held-out data). A curve is L₀ + Σ_{2 ≤ s ≤ t} L_{s−1} averaged over
the examples, in bits per dimension, on a log t axis (most of the bound is spent at small t); its right end plus L_T
is the total. Colour is the model, the line style the variance: solid β̃_t (fixed_small), dashed β_t (fixed_large).
Where every curve is positive (8-bit digits) the y axis is logarithmic, so 0.8 and 1,000 bits/dim show together;
a bound on a density can be negative, so there the axis is linear, and a curve far above the networks' (the exact
denoiser off its training set) leaves the panel and says so in its legend entry.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.diffusion.bound import Bound, Likelihood
from explorer.diffusion.indexing import paper_t
from explorer.diffusion.posterior import VarianceType
from explorer.figures.sampling import LEGEND_BELOW
from explorer.figures.schedules import COLOURS, FONT

VARIANCE_NAMES = {
    VarianceType.FIXED_SMALL: "σ² = β̃_t",
    VarianceType.FIXED_LARGE: "σ² = β_t",
    VarianceType.LEARNED_RANGE: "σ² learned",
}
VARIANCE_DASHES = {
    VarianceType.FIXED_SMALL: "solid",
    VarianceType.FIXED_LARGE: "dash",
    VarianceType.LEARNED_RANGE: "dot",
}
OFF_SCALE = 4.0  # a curve whose total exceeds this many times the largest network total leaves the panel


def _colours(results: Mapping[str, Sequence[Bound]]) -> dict[str, str]:
    names = list(dict.fromkeys(b.model for bounds in results.values() for b in bounds))
    return {name: COLOURS[k % len(COLOURS)] for k, name in enumerate(names)}


def _range(bounds: Sequence[Bound], references: Collection[str]) -> tuple[float, float] | None:
    """The y range that shows every network curve (the reference models' too, unless far above them); None when
    every curve fits."""
    networks = [b for b in bounds if b.model not in references] or list(bounds)
    curves = [b.cumulative_bits_per_dim() for b in networks]
    low, high = min(float(c.min()) for c in curves), max(float(c.max()) for c in curves)
    if all(float(b.cumulative_bits_per_dim().max()) <= OFF_SCALE * max(high, 1.0) for b in bounds):
        return None  # every curve fits: let Plotly choose
    margin = 0.1 * (high - low) or 1.0
    return low - margin, high + margin


def bound_figure(results: Mapping[str, Sequence[Bound]], references: Collection[str] = ()) -> go.Figure:
    """results: split label → the bounds measured on that split (one per model and variance); references: names of
    models drawn beside the networks (the exact denoiser), whose curves may leave the panel."""
    splits = list(results)
    figure = make_subplots(rows=1, cols=len(splits), subplot_titles=splits, horizontal_spacing=0.08)
    colours = _colours(results)
    for col, split in enumerate(splits, start=1):
        positive = all(float(b.cumulative_bits_per_dim().min()) > 0 for b in results[split])
        y_range = None if positive else _range(results[split], references)  # a log axis shows every curve
        for bound in results[split]:
            curve = bound.cumulative_bits_per_dim()
            t = paper_t(np.arange(curve.size))
            total = bound.mean_bits_per_dim()
            label = f"{bound.model}, {VARIANCE_NAMES[bound.variance]}"
            off = y_range is not None and float(curve.max()) > y_range[1]
            figure.add_trace(
                go.Scatter(
                    x=t,
                    y=curve,
                    name=f"{label}: {total:.4g}" + (" (off the scale)" if off else ""),
                    legendgroup=f"{label} {split}",
                    mode="lines",
                    line=dict(color=colours[bound.model], dash=VARIANCE_DASHES[bound.variance], width=2),
                    hovertemplate=f"{label}<br>t = %{{x}}<br>L₀ + … + L<sub>t−1</sub> = %{{y:.4g}} bits/dim"
                    "<extra></extra>",
                ),
                1,
                col,
            )
        if positive:
            figure.update_yaxes(type="log", row=1, col=col)
        elif y_range is not None:
            figure.update_yaxes(range=list(y_range), row=1, col=col)
    unit = _unit(results)
    figure.update_xaxes(type="log", title_text="paper step t (log)")
    figure.update_yaxes(title_text=f"cumulative bound, {unit}", row=1, col=1)
    figure.update_layout(
        font=FONT,
        height=520,
        margin=dict(l=75, r=30, t=60, b=175),  # drawn once: room for legend and labels
        legend=dict(LEGEND_BELOW, y=-0.18, font=dict(size=11)),
        title=dict(text="The bound L₀ + Σ L<sub>t−1</sub>, summed from t = 1 up (legend: total with L<sub>T</sub>)"),
    )
    return figure


def _unit(results: Mapping[str, Sequence[Bound]]) -> str:
    kinds = {b.likelihood for bounds in results.values() for b in bounds}
    return "bits/dim" if kinds == {Likelihood.DISCRETE_8BIT} else "bits/dim (of a density)"


def bound_rows(results: Mapping[str, Sequence[Bound]]) -> list[tuple[str, str, list[str]]]:
    """(model, variance, one 'mean ± standard error' bits/dim per split) for every model and variance measured."""
    rows: dict[tuple[str, VarianceType], list[str]] = {}
    splits = list(results)
    for column, split in enumerate(splits):
        for bound in results[split]:
            row = rows.setdefault((bound.model, bound.variance), ["—"] * len(splits))
            row[column] = f"{bound.mean_bits_per_dim():.4g} ± {bound.standard_error():.2g}"
    return [(model, VARIANCE_NAMES[variance], cells) for (model, variance), cells in rows.items()]


def bound_markdown(results: Mapping[str, Sequence[Bound]]) -> str:
    """The totals as a Markdown table: model, variance, bits/dim per split (mean ± standard error over examples)."""
    splits = list(results)
    lines = ["| model | variance | " + " | ".join(f"{s} (bits/dim)" for s in splits) + " |"]
    lines.append("|---|---|" + "---:|" * len(splits))
    for model, variance, cells in bound_rows(results):
        lines.append(f"| {model} | {variance} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
