"""A flow run's paths on the flow path's own coordinates: straight training chords beside the exact curved paths.

Left: for K points of the batch, from the run's starting noise, the straight conditional path (1 − σ) x₀* + σ ε
(dashed), the exact path of the marginal velocity u* (solid, `explorer.diffusion.flow_paths`), and the run's own
states x_σ = c(σ) x_t (dotted); the training set in grey. Right: how far n Euler steps along the exact u* end from
the exact endpoints (RMS, log–log). The sentence under it is computed from these numbers (`paths_sentence`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.diffusion.flow_paths import EULER_TOLERANCE, FlowPaths
from explorer.figures.schedules import FONT

DRAWN_POINTS = 200  # points per path drawn (evenly strided over the integration grid, the ends kept)
STRAIGHT, CURVED, RUN = "#1f77b4", "#d62728", "#ff7f0e"


@dataclass(frozen=True)
class RunPaths:
    """The run's own states on the flow path for the K paths drawn: x_σ [K, S + 1, D] (the samples last), the
    number of steps S, and whether any step added noise (then its paths are not those of an ODE)."""

    states: np.ndarray
    steps: int
    stochastic: bool


def _g(value: float) -> str:
    return f"{value:.3g}"


def _lines(paths: np.ndarray) -> dict[str, np.ndarray]:
    """x and y of paths [K, L, 2] as one trace: the paths joined by NaN gaps."""
    gap = np.full((paths.shape[0], 1, 2), np.nan)
    joined = np.concatenate([paths[:, :, :2], gap], axis=1).reshape(-1, 2)
    return {"x": joined[:, 0], "y": joined[:, 1]}


def _strided(paths: np.ndarray) -> np.ndarray:
    keep = np.unique(np.round(np.linspace(0, paths.shape[1] - 1, DRAWN_POINTS)).astype(np.int64))
    return paths[:, keep]


def paths_sentence(paths: FlowPaths, run: RunPaths | None = None, name: str = "the run") -> str:
    """What the figure shows, every number read off `paths` (and the run's endpoints when given)."""
    k = len(paths.gap)
    first = paths.euler_error[0]
    reached = paths.steps_to_reach()
    text = (
        f"From the same {k} starting points, the exact paths of the marginal velocity u* (what a perfect flow model "
        f"predicts) are not the straight training paths (1 − σ) x₀* + σ ε to where they end: the largest gap between "
        f"a path and its straight chord at the same σ is {_g(paths.gap.max())} (median {_g(np.median(paths.gap))}), "
        f"and a path is {_g(np.median(paths.length_ratio))}× as long as its chord (median). Euler steps along the "
        f"exact u*: 1 step lands {_g(first)} (RMS) from the exact endpoints"
    )
    if paths.sigmas[0] == 1.0:
        text += " (one step from σ = 1 sends every start to the training set's mean: there u* = ε − E[x₀])"
    if reached is None:
        last = paths.euler_error[-1]
        text += f"; even {paths.euler_steps[-1]} steps stay {_g(last)} away, more than {EULER_TOLERANCE:g}."
    else:
        error = paths.euler_error[list(paths.euler_steps).index(reached)]
        text += f"; {reached} steps come within {EULER_TOLERANCE:g} ({_g(error)}). Straight training paths, curved "
        text += "sampling paths: that is why one step is not enough."
    if run is not None:
        distance = float(np.sqrt(((run.states[:, -1] - paths.end) ** 2).sum(-1).mean()))
        text += f" {name} took {run.steps} steps and its samples end {_g(distance)} (RMS) from the exact endpoints"
        text += (
            ": its steps add noise, so its paths are not those of an ODE." if run.stochastic else " of the same starts."
        )
    return text


def paths_figure(paths: FlowPaths, data: np.ndarray, run: RunPaths | None = None) -> go.Figure:
    """The two panels: the paths on the plane (2-D only) and the Euler error against the number of steps."""
    if paths.curved.shape[-1] != 2:
        raise ValueError(f"the flow paths are drawn for 2-D data; got {paths.curved.shape[-1]}-D")
    figure = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.62, 0.38],
        subplot_titles=(
            f"x<sub>σ</sub> from σ = {paths.sigmas[0]:.3g} (○) to 0 (x₀*, ×)",
            "Euler along the exact u*: RMS distance from x₀*",
        ),
        horizontal_spacing=0.1,
    )
    figure.add_trace(
        go.Scatter(
            x=data[:, 0],
            y=data[:, 1],
            mode="markers",
            marker=dict(size=3, color="rgba(90, 90, 90, 0.45)"),
            name=f"training set ({len(data):,} points)",
            hoverinfo="skip",
        ),
        1,
        1,
    )
    straight = dict(mode="lines", line=dict(color=STRAIGHT, width=1.5, dash="dash"), hoverinfo="skip")
    figure.add_trace(
        go.Scatter(**_lines(_strided(paths.straight)), name="straight training paths (1 − σ) x₀* + σ ε", **straight),
        1,
        1,
    )
    figure.add_trace(
        go.Scatter(
            **_lines(_strided(paths.curved)),
            mode="lines",
            line=dict(color=CURVED, width=2),
            name="exact paths of the marginal velocity u*",
            hoverinfo="skip",
        ),
        1,
        1,
    )
    if run is not None:
        figure.add_trace(
            go.Scatter(
                **_lines(run.states),
                mode="lines+markers",
                line=dict(color=RUN, width=1.5, dash="dot"),
                marker=dict(size=3, color=RUN),
                name=f"the run's states x<sub>σ</sub> = c(σ) x<sub>t</sub> ({run.steps} steps)",
                hoverinfo="skip",
            ),
            1,
            1,
        )
    for points, symbol, name in ((paths.start, "circle-open", "start"), (paths.end, "x", "exact endpoint x₀*")):
        figure.add_trace(
            go.Scatter(
                x=points[:, 0],
                y=points[:, 1],
                mode="markers",
                marker=dict(size=9, symbol=symbol, color="black", line=dict(width=1.5)),
                name=name,
            ),
            1,
            1,
        )
    figure.add_trace(
        go.Scatter(
            x=paths.euler_steps,
            y=paths.euler_error,
            mode="lines+markers",
            line=dict(color=CURVED, width=2),
            name="Euler along u*: RMS distance from x₀*",
        ),
        1,
        2,
    )
    figure.add_hline(y=EULER_TOLERANCE, line=dict(color="grey", dash="dot", width=1), row=1, col=2)
    if run is not None:
        figure.add_vline(x=run.steps, line=dict(color=RUN, dash="dot", width=1.5), row=1, col=2)
    figure.update_xaxes(title_text="x₁", zeroline=False, showgrid=False, constrain="domain", row=1, col=1)
    figure.update_yaxes(title_text="x₂", zeroline=False, showgrid=False, scaleanchor="x", row=1, col=1)
    figure.update_xaxes(type="log", title_text=f"Euler steps (σ = {paths.sigmas[0]:.3g} → 0)", row=1, col=2)
    figure.update_yaxes(type="log", exponentformat="power", row=1, col=2)
    figure.update_layout(
        height=560,
        margin=dict(l=50, r=20, t=50, b=40),
        font=FONT,
        template="plotly_white",
        legend=dict(orientation="h", x=0, y=-0.12, yanchor="top"),
    )
    figure.update_annotations(font_size=12)
    return figure
