"""The parameterization table measured, as one figure over paper t (log axis, so both ends of t show).

Panels: the RMS of each target (measured, and its closed form dotted); the weight each loss puts on ‖x₀ − x̂₀‖²
(closed forms as lines, min-SNR-γ dashed, and the measured ratio error-in-that-space ÷ error-in-x₀ as markers);
each model's own-space error relative to its target's mean square (which end of t is hard); every model's error
in x₀ space and in u space; and, when both are given, the min-SNR-γ ε model's x₀ error over the uniform one's.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.diffusion.indexing import paper_t
from explorer.diffusion.measured_table import MeasuredTable
from explorer.diffusion.parameterization import Prediction
from explorer.diffusion.weighting import implied_weight, min_snr_weight
from explorer.figures.sampling import LEGEND_BELOW, MODEL_DASHES, MODEL_SYMBOLS
from explorer.figures.schedules import COLOURS, FONT

SYMBOLS = {
    Prediction.EPSILON: "ε",
    Prediction.SAMPLE: "x₀",
    Prediction.V_PREDICTION: "v",
    Prediction.FLOW: "u = ε − x₀",
}
TARGET_COLOURS = {Prediction.EPSILON: "#1f77b4", Prediction.SAMPLE: "#d62728", Prediction.V_PREDICTION: "#2ca02c"}
TARGET_COLOURS[Prediction.FLOW] = "#9467bd"
WEIGHT_NAMES = {
    Prediction.EPSILON: "ε: SNR",
    Prediction.SAMPLE: "x₀: 1",
    Prediction.V_PREDICTION: "v: 1 + SNR",
    Prediction.FLOW: "u: 1/σ² = (1 + √SNR)²",
}
PANELS = (
    "RMS of each target (dotted: closed form)",
    "weight on ‖x₀ − x̂₀‖² (log; markers: measured ratio)",
    "own-space MSE ÷ target mean square (log)",
    "MSE in x₀ space (log)",
    "MSE in u = ε − x₀ space, the flow target (log)",
    "min-SNR ε model ÷ uniform ε model: x₀ MSE (log)",
)


def _line(x, y, name, colour, *, dash="solid", group=None, legend=True, width=2.0) -> go.Scatter:
    return go.Scatter(
        x=x,
        y=np.asarray(y, dtype=np.float64),
        name=name,
        legendgroup=group or name,
        showlegend=legend,
        mode="lines",
        line=dict(color=colour, dash=dash, width=width),
    )


def _targets_panel(figure: go.Figure, table: MeasuredTable, t: np.ndarray) -> None:
    for target in Prediction:
        colour = TARGET_COLOURS[target]
        figure.add_trace(_line(t, table.rms[target], f"RMS of {SYMBOLS[target]}", colour, group="targets"), 1, 1)
        closed = _line(t, table.closed_rms[target], "closed form", colour, dash="dot", group="targets", legend=False)
        figure.add_trace(closed, 1, 1)


def _weights_panel(figure: go.Figure, table: MeasuredTable, t: np.ndarray, gamma: float | None) -> None:
    reference = next((m for m in table.models if m.target is Prediction.EPSILON), table.models[0])
    for target in Prediction:
        colour = TARGET_COLOURS[target]
        figure.add_trace(_line(t, implied_weight(target, table.snr), WEIGHT_NAMES[target], colour, group="w"), 1, 2)
        ratio = reference.errors[target] / reference.errors[Prediction.SAMPLE]
        figure.add_trace(
            go.Scatter(
                x=t,
                y=ratio,
                name=f"measured: {reference.name}'s {SYMBOLS[target].split(' ')[0]} MSE ÷ its x₀ MSE",
                legendgroup="w",
                showlegend=target is Prediction.EPSILON,
                mode="markers",
                marker=dict(color=colour, size=5, symbol="circle-open", maxdisplayed=40),
            ),
            1,
            2,
        )
    if gamma is not None:
        weight = min_snr_weight(table.snr, gamma)
        figure.add_trace(_line(t, weight, f"min-SNR-{gamma:g}: min(SNR, {gamma:g})", "black", dash="dash"), 1, 2)


def _model_style(k: int) -> dict:
    return dict(colour=COLOURS[k % len(COLOURS)], dash=MODEL_DASHES[k % len(MODEL_DASHES)])


def table_figure(table: MeasuredTable, *, gamma: float | None = None, min_snr: tuple[str, str] | None = None):
    """The six panels over paper t for a `MeasuredTable`.

    gamma: the γ of min-SNR-γ drawn beside the implied weights (None: not drawn). min_snr: (uniform ε model's
    name, min-SNR ε model's name) for the last panel; None leaves it empty with a note.
    """
    figure = make_subplots(rows=2, cols=3, subplot_titles=PANELS, horizontal_spacing=0.07, vertical_spacing=0.16)
    t = paper_t(table.timesteps).astype(np.float64)
    _targets_panel(figure, table, t)
    _weights_panel(figure, table, t, gamma)
    for k, model in enumerate(table.models):
        style = _model_style(k)
        label = f"{model.name} ({SYMBOLS[model.target].split(' ')[0]}-prediction)"
        relative = model.own() / table.rms[model.target] ** 2
        for (row, col), values in zip(
            ((1, 3), (2, 1), (2, 2)),
            (relative, model.errors[Prediction.SAMPLE], model.errors[Prediction.FLOW]),
            strict=True,
        ):
            figure.add_trace(
                go.Scatter(
                    x=t,
                    y=values,
                    name=label,
                    legendgroup=label,
                    showlegend=(row, col) == (1, 3),
                    mode="lines+markers",
                    marker=dict(size=5, symbol=MODEL_SYMBOLS[k % len(MODEL_SYMBOLS)], maxdisplayed=20),
                    line=dict(color=style["colour"], dash=style["dash"], width=2),
                ),
                row,
                col,
            )
    if min_snr is not None:
        uniform, weighted = (table.model(name).errors[Prediction.SAMPLE] for name in min_snr)
        figure.add_trace(_line(t, weighted / uniform, f"{min_snr[1]} ÷ {min_snr[0]}", "black", width=2.5), 2, 3)
        figure.add_hline(y=1.0, line=dict(color="grey", width=1), row=2, col=3)
    else:
        figure.add_annotation(
            text="a min-SNR ε model is bundled for moons only",
            showarrow=False,
            xref="x6 domain",
            yref="y6 domain",
            x=0.5,
            y=0.5,
        )
    if gamma is not None:  # where SNR = γ: min-SNR-γ weighs less than plain ε-MSE for t below this
        below = np.flatnonzero(table.snr >= gamma)
        if below.size:
            for row, col in ((1, 2), (2, 3)):
                figure.add_vline(x=float(t[below[-1]]), line=dict(color="grey", dash="dot", width=1), row=row, col=col)
    figure.update_xaxes(type="log", title_text="t (paper step, log)", title_standoff=2)
    for row, col in ((1, 2), (1, 3), (2, 1), (2, 2), (2, 3)):
        figure.update_yaxes(type="log", exponentformat="power", row=row, col=col)
    figure.update_yaxes(rangemode="tozero", row=1, col=1)
    figure.update_layout(
        height=720,
        margin=dict(l=45, r=30, t=50, b=200),  # drawn once: room for legend and labels
        font=FONT,
        template="plotly_white",
        legend=dict(LEGEND_BELOW, y=-0.1),
    )
    figure.update_annotations(font_size=12)
    return figure
