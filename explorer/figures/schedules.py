"""Plotly figures from explorer data (no gradio here): schedules, posteriors, trajectories, comparisons.

Labels use Unicode and <sub>, never LaTeX: the page has no MathJax for plot titles. The x axis shows the
paper's step t = 1..T. Long curves are thinned to at most `MAX_POINTS` points (ends and the chosen step
kept) so that a figure stays small enough to answer within a blink.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.diffusion.indexing import paper_t, timestep_of
from explorer.diffusion.schedules import Schedule
from explorer.validation import parse_mode

MAX_POINTS = 500
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
SPACING_SYMBOLS = {"leading": "circle", "trailing": "diamond", "linspace": "x"}
FONT = dict(family="Inter, Helvetica, Arial, sans-serif", size=13)


class XAxis(StrEnum):
    """What the schedule plots are drawn against."""

    T = "t"
    T_OVER_T = "t/T"
    BETA = "β_t"

    @classmethod
    def parse(cls, value: str | XAxis, field: str = "x axis") -> XAxis:
        return parse_mode(cls, value, field, casefold=False)


@dataclass(frozen=True)
class LabelledSchedule:
    """A schedule with the name shown in legends."""

    schedule: Schedule
    label: str


def thin(count: int, keep: Sequence[int] = (), max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ~max_points of `count` evenly spread, with both ends and `keep` included."""
    if count <= max_points:
        return np.arange(count)
    chosen = np.round(np.linspace(0, count - 1, max_points)).astype(np.int64)
    extra = [k for k in keep if 0 <= k < count]
    return np.unique(np.concatenate([chosen, np.asarray(extra, dtype=np.int64), [0, count - 1]]))


def _finite(values: np.ndarray) -> np.ndarray:
    """float32 copy with ±inf turned into NaN (a gap in the line)."""
    out = np.asarray(values, dtype=np.float32).copy()
    out[~np.isfinite(out)] = np.nan
    return out


def _positive(values: np.ndarray) -> np.ndarray:
    """float32 copy for a log axis: zeros and ±inf become NaN (a gap, never a point at −∞)."""
    out = _finite(values)
    out[out <= 0] = np.nan
    return out


def _x_values(schedule: Schedule, axis: XAxis, index: np.ndarray) -> np.ndarray:
    if axis is XAxis.BETA:
        return _finite(schedule.betas[index])
    t = paper_t(index).astype(np.float32)
    return t / schedule.num_train_timesteps if axis is XAxis.T_OVER_T else t


_PANELS = (
    "β<sub>t</sub> (solid) and β̃<sub>t</sub> (dashed)",
    "ᾱ<sub>t</sub>",
    "√ᾱ<sub>t</sub> signal (solid), √(1−ᾱ<sub>t</sub>) noise (dashed)",
    "log SNR<sub>t</sub> = log ᾱ<sub>t</sub>/(1−ᾱ<sub>t</sub>); markers: steps a sampler visits",
    "posterior mean weights (log): of x₀ (solid), of x<sub>t</sub> (dashed)",
    "timesteps visited by each spacing (first schedule)",
)


def schedule_figure(
    schedules: Sequence[LabelledSchedule],
    *,
    t: int,
    x_axis: str | XAxis = XAxis.T,
    visited: Mapping[str, np.ndarray] | None = None,
) -> go.Figure:
    """Six panels of schedule tables, one colour per schedule, a dotted line at paper step t.

    `visited` maps a spacing name to the 0-based timesteps it visits (drawn on the first schedule's
    log-SNR curve and in a strip of their own).
    """
    axis = XAxis.parse(x_axis)
    figure = make_subplots(rows=2, cols=3, subplot_titles=_PANELS, horizontal_spacing=0.07, vertical_spacing=0.16)
    traces: list[go.Scatter] = []

    def line(schedule_index: int, label: str, x, y, panel: int, dashed: bool = False, first: bool = False):
        traces.append(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=label,
                legendgroup=label,
                showlegend=first,
                line=dict(color=COLOURS[schedule_index % len(COLOURS)], dash="dash" if dashed else "solid", width=2),
                xaxis=f"x{panel}",
                yaxis=f"y{panel}",
                hovertemplate="%{x:.4g}, %{y:.4g}<extra>" + label + "</extra>",
            )
        )

    for k, item in enumerate(schedules):
        s, label = item.schedule, item.label
        index = thin(s.num_train_timesteps, keep=[timestep_of(t)])
        x = _x_values(s, axis, index)
        line(k, label, x, _finite(s.betas[index]), 1, first=True)
        keep = index[index > 0]  # β̃_1 = 0 has no place on a log axis
        line(k, label, _x_values(s, axis, keep), _finite(s.posterior_variance[keep]), 1, dashed=True)
        line(k, label, x, _finite(s.alphas_cumprod[index]), 2)
        line(k, label, x, _finite(s.sqrt_alphas_cumprod[index]), 3)
        line(k, label, x, _finite(s.sqrt_one_minus_alphas_cumprod[index]), 3, dashed=True)
        line(k, label, x, _finite(s.log_snr[index]), 4)
        # Log axis: the weight of x₀ sits near 10⁻³ for most t; the weight of x_t is 0 at t = 1 (a gap there).
        line(k, label, x, _positive(s.posterior_mean_coef_x0[index]), 5)
        line(k, label, _x_values(s, axis, keep), _positive(s.posterior_mean_coef_xt[keep]), 5, dashed=True)

    if schedules and visited:
        first = schedules[0].schedule
        for row, (spacing, steps) in enumerate(visited.items()):
            steps = np.asarray(steps, dtype=np.int64)
            symbol = SPACING_SYMBOLS.get(spacing, "circle")
            x = _x_values(first, axis, steps)
            marker = dict(symbol=symbol, size=7, color=COLOURS[3 + row % 3], line=dict(width=1, color="black"))
            traces.append(
                go.Scatter(
                    x=x,
                    y=_finite(first.log_snr[steps]),
                    mode="markers",
                    name=f"{spacing} ({steps.size} steps)",
                    legendgroup=spacing,
                    marker=marker,
                    xaxis="x4",
                    yaxis="y4",
                    hovertemplate="t = %{text}<br>log SNR %{y:.3g}<extra>" + spacing + "</extra>",
                    text=paper_t(steps).astype(str),
                )
            )
            traces.append(
                go.Scatter(
                    x=x,
                    y=[spacing] * steps.size,
                    mode="markers",
                    showlegend=False,
                    legendgroup=spacing,
                    marker=marker,
                    xaxis="x6",
                    yaxis="y6",
                    hovertemplate="t = %{text}<extra>" + spacing + "</extra>",
                    text=paper_t(steps).astype(str),
                )
            )
    figure.add_traces(traces)

    if schedules:
        first = schedules[0].schedule
        position = _x_values(first, axis, np.array([timestep_of(min(t, first.num_train_timesteps))]))[0]
        for panel in range(1, 7):
            suffix = "" if panel == 1 else str(panel)
            figure.add_shape(
                type="line",
                x0=float(position),
                x1=float(position),
                y0=0,
                y1=1,
                xref=f"x{suffix}",
                yref=f"y{suffix} domain",
                line=dict(color="black", dash="dot", width=1),
            )
    title = {XAxis.T: "t (paper step, 1..T)", XAxis.T_OVER_T: "t/T", XAxis.BETA: "β<sub>t</sub>"}[axis]
    figure.update_xaxes(title_text=title, title_standoff=4)
    if axis is XAxis.BETA:
        figure.update_xaxes(type="log", exponentformat="power")
    figure.update_yaxes(type="log", exponentformat="power", row=1, col=1)
    figure.update_yaxes(type="log", exponentformat="power", row=2, col=2)
    figure.update_layout(
        height=620,
        margin=dict(l=50, r=20, t=50, b=40),
        font=FONT,
        legend=dict(orientation="h", y=-0.1, x=0),
        hovermode="closest",
        template="plotly_white",
    )
    figure.update_annotations(font_size=12)
    return figure
