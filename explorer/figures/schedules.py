"""Plotly figures from explorer data (no gradio here): schedules, posteriors, trajectories, comparisons.

Labels use Unicode and <sub>, never LaTeX: the page has no MathJax for plot titles. The x axis shows the
paper's step t = 1..T. Long curves are thinned to at most `MAX_POINTS` points (ends and the chosen step
kept) so that a figure stays small enough to answer within a blink.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from explorer.diffusion.indexing import paper_t, timestep_of
from explorer.diffusion.schedules import Schedule
from explorer.figures.plain import PlainFigure, axis_names, axis_suffix, subplot_layout, template
from explorer.validation import Mode

MAX_POINTS = 500
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
SPACING_SYMBOLS = {"leading": "circle", "trailing": "diamond", "linspace": "x"}
FONT = dict(family="Inter, Helvetica, Arial, sans-serif", size=13)


class XAxis(Mode, field="x axis", casefold=False):
    """What the schedule plots are drawn against."""

    T = "t"
    T_OVER_T = "t/T"
    BETA = "β_t"


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


def _shape_at(position: float, panel: int) -> dict:
    """A dotted vertical line at x = position across panel `panel` (1-based)."""
    suffix = axis_suffix(panel)
    line = dict(color="black", dash="dot", width=1)
    return dict(
        type="line", x0=position, x1=position, y0=0, y1=1, xref=f"x{suffix}", yref=f"y{suffix} domain", line=line
    )


def _line(colour: int, label: str, x, y, panel: int, dashed: bool = False, first: bool = False) -> dict:
    """One schedule curve on panel `panel`; only the first curve of a schedule shows in the legend."""
    return dict(
        type="scatter",
        x=x,
        y=y,
        mode="lines",
        name=label,
        legendgroup=label,
        showlegend=first,
        line=dict(color=COLOURS[colour % len(COLOURS)], dash="dash" if dashed else "solid", width=2),
        xaxis=f"x{axis_suffix(panel)}",
        yaxis=f"y{axis_suffix(panel)}",
        hovertemplate="%{x:.4g}, %{y:.4g}<extra>" + label + "</extra>",
    )


def _schedule_traces(k: int, item: LabelledSchedule, axis: XAxis, t: int) -> list[dict]:
    """The eight curves of schedule number k (0-based) on panels 1–5."""
    s, label = item.schedule, item.label
    index = thin(s.num_train_timesteps, keep=[timestep_of(t)])
    x = _x_values(s, axis, index)
    keep = index[index > 0]  # β̃_1 = 0 has no place on a log axis
    x_keep = _x_values(s, axis, keep)
    return [
        _line(k, label, x, _finite(s.betas[index]), 1, first=True),
        _line(k, label, x_keep, _finite(s.posterior_variance[keep]), 1, dashed=True),
        _line(k, label, x, _finite(s.alphas_cumprod[index]), 2),
        _line(k, label, x, _finite(s.sqrt_alphas_cumprod[index]), 3),
        _line(k, label, x, _finite(s.sqrt_one_minus_alphas_cumprod[index]), 3, dashed=True),
        _line(k, label, x, _finite(s.log_snr[index]), 4),
        # Log axis: the weight of x₀ sits near 10⁻³ for most t; the weight of x_t is 0 at t = 1 (a gap there).
        _line(k, label, x, _positive(s.posterior_mean_coef_x0[index]), 5),
        _line(k, label, x_keep, _positive(s.posterior_mean_coef_xt[keep]), 5, dashed=True),
    ]


def _visited_traces(first: Schedule, axis: XAxis, visited: Mapping[str, np.ndarray]) -> list[dict]:
    """Per spacing: its steps as markers on the first schedule's log-SNR curve and in a strip of their own."""
    traces = []
    for row, (spacing, steps) in enumerate(visited.items()):
        steps = np.asarray(steps, dtype=np.int64)
        x = _x_values(first, axis, steps)
        marker = dict(
            symbol=SPACING_SYMBOLS.get(spacing, "circle"),
            size=7,
            color=COLOURS[3 + row % 3],
            line=dict(width=1, color="black"),
        )
        text = [str(t) for t in paper_t(steps).tolist()]
        shared = dict(type="scatter", x=x, mode="markers", legendgroup=spacing, marker=marker, text=text)
        on_snr = f"t = %{{text}}<br>log SNR %{{y:.3g}}<extra>{spacing}</extra>"
        name = f"{spacing} ({steps.size} steps)"
        traces.append(
            dict(shared, y=_finite(first.log_snr[steps]), name=name, xaxis="x4", yaxis="y4", hovertemplate=on_snr)
        )
        strip = f"t = %{{text}}<extra>{spacing}</extra>"
        traces.append(
            dict(shared, y=[spacing] * steps.size, showlegend=False, xaxis="x6", yaxis="y6", hovertemplate=strip)
        )
    return traces


def schedule_figure(
    schedules: Sequence[LabelledSchedule],
    *,
    t: int,
    x_axis: str | XAxis = XAxis.T,
    visited: Mapping[str, np.ndarray] | None = None,
) -> PlainFigure:
    """Six panels of schedule tables, one colour per schedule, a dotted line at paper step t.

    `visited` maps a spacing name to the 0-based timesteps it visits (drawn on the first schedule's
    log-SNR curve and in a strip of their own). Built as plain data (see explorer.figures.plain).
    """
    axis = XAxis.parse(x_axis)
    layout = subplot_layout(2, 3, list(_PANELS), horizontal_spacing=0.07, vertical_spacing=0.16)
    traces = [trace for k, item in enumerate(schedules) for trace in _schedule_traces(k, item, axis, t)]
    if schedules and visited:
        traces += _visited_traces(schedules[0].schedule, axis, visited)
    if schedules:
        first = schedules[0].schedule
        position = _x_values(first, axis, np.array([timestep_of(min(t, first.num_train_timesteps))]))[0]
        layout["shapes"] = [_shape_at(float(position), panel) for panel in range(1, 7)]
    title = {XAxis.T: "t (paper step, 1..T)", XAxis.T_OVER_T: "t/T", XAxis.BETA: "β<sub>t</sub>"}[axis]
    for name in axis_names(layout, "x"):
        layout[name]["title"] = dict(text=title, standoff=4)
        if axis is XAxis.BETA:
            layout[name].update(type="log", exponentformat="power")
    for name in ("yaxis", "yaxis5"):  # β and β̃; the posterior mean weights
        layout[name].update(type="log", exponentformat="power")
    for name in (*axis_names(layout, "x"), *axis_names(layout, "y")):
        layout[name].setdefault("nticks", 6)
    for annotation in layout["annotations"]:
        annotation["font"]["size"] = 12
    layout.update(
        height=620,
        # Room for the legend row under the x titles and the last tick label ("1000") past the right edge: margins
        # Plotly would otherwise push out after drawing, and then draw the whole figure a second time.
        margin=dict(l=50, r=30, t=50, b=90),
        font=FONT,
        legend=dict(orientation="h", y=-0.1, x=0),
        hovermode="closest",
        template=template(),
    )
    return PlainFigure(traces, layout)
