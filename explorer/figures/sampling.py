"""Figures of a recorded reverse run: signal and noise shares, and per-step diagnostics, over paper t."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.diffusion.indexing import frame_of, paper_t
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.views import FOUR_VIEWS, view_of
from explorer.figures.schedules import COLOURS, FONT

LEGEND_BELOW = dict(orientation="h", y=-0.3, yanchor="top")  # under the x-axis titles
MODEL_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
MODEL_SYMBOLS = ("circle", "square", "diamond", "x", "triangle-up", "cross")
KL_LEFT_OUT = (
    "KL panel, t ≥ 2 only: L₀ (t = 1) is a decoder term, not a KL between Gaussians; "
    "L<sub>T</sub> = KL(q(x<sub>T</sub> | x₀) ‖ N(0, I)) has no parameters"
)


def step_label(settings, index: int) -> str:
    """The "t = a → b" of frame `index` of a run with `settings` (a `SamplerSettings`), in paper t: a is where the
    step's x_prev is computed from, b where it lands (`settings.prev_timesteps`; 0 is the data). A flow scheduler's
    frames say "σ = a → b" and their pipeline timestep instead (`Landings.labels`)."""
    if settings.landings is not None and settings.landings.labels:
        return settings.landings.labels[index]
    start, landing = paper_t(settings.step_starts[index]), paper_t(settings.prev_timesteps[index])
    return f"t = {start} → {landing if landing > 0 else '0 (data)'}"


def frame_notes(settings, index: int) -> list[str]:
    """What else frame `index` must say: why a multi-call scheduler has this frame (Heun's 2nd call, PNDM's
    Runge–Kutta calls, …), and where the model is called at another t than the one x_t lies at (diffusers' DDIM
    and PNDM land on t − T//n, which is not the next call's t under linspace or trailing spacing)."""
    role = settings.frame_roles[index]
    notes = [role] if role else []
    call = settings.timesteps[index]
    if index > 0:
        lies_at = settings.prev_timesteps[index - 1]
        if lies_at != call:
            notes.append(
                f"x_t lies at t = {paper_t(lies_at)}, where the previous frame landed; the scheduler calls the "
                f"model at t = {paper_t(call)}"
            )
    return notes


def frame_caption(run, index: int) -> str:
    """The one caption of frame `index` of a run (a `Trajectory` or `CompactTrajectory`): "frame k of S · t = a → b"
    and the frame's notes. The page's picture, its text line and the exports all use it."""
    parts = [f"frame {frame_of(index)} of {len(run)}", step_label(run.settings, index)]
    return " · ".join(parts + frame_notes(run.settings, index))


def run_diagnostics(compact, schedule: Schedule) -> dict[str, np.ndarray]:
    """Per-step numbers of a `CompactTrajectory` (float64 [S] each, S = steps, k-th = step k)."""
    steps = compact.timesteps
    batch = compact.x_t.shape[1]
    x_t = compact.x_t.float().reshape(len(steps), batch, -1)
    eps = compact.eps.float().reshape(len(steps), batch, -1)
    x0 = compact.x0.float().reshape(len(steps), batch, -1)
    return {
        "t": paper_t(steps).astype(np.float64),
        "signal": schedule.sqrt_alphas_cumprod[steps],
        "noise": schedule.sqrt_one_minus_alphas_cumprod[steps],
        "x_t_rms": x_t.pow(2).mean(dim=2).sqrt().mean(dim=1).double().numpy(),
        "eps_std": eps.std(dim=2).mean(dim=1).double().numpy(),
        "x0_min": x0.amin(dim=(1, 2)).double().numpy(),
        "x0_max": x0.amax(dim=(1, 2)).double().numpy(),
        "clipped": compact.clipped_fraction.mean(dim=1).double().numpy(),
    }


T_REVERSED = "t (paper step, reversed: a run reads left to right)"
DIAGNOSTIC_PANELS = (
    "signal √ᾱ<sub>t</sub> and noise √(1−ᾱ<sub>t</sub>) shares of x<sub>t</sub>, RMS of x<sub>t</sub>,<br>"
    "std of ε̂ (near 1 expected only at high t, where noise dominates)",
    "range of x̂₀ (left axis);<br>fraction of x̂₀ clipped (0–1, right axis)",
)
DIAGNOSTIC_TRACES = (  # key, name, panel, colour, dash (panel 3: the second panel's right axis)
    ("signal", "signal √ᾱ_t", 1, "#1f77b4", "solid"),
    ("noise", "noise √(1−ᾱ_t)", 1, "#d62728", "dash"),
    ("x_t_rms", "RMS of x_t", 1, "#2ca02c", "solid"),
    ("eps_std", "std of ε̂", 1, "#9467bd", "dash"),
    ("x0_min", "min x̂₀", 2, "#8c564b", "solid"),
    ("x0_max", "max x̂₀", 2, "#8c564b", "dot"),
    ("clipped", "fraction of x̂₀ clipped", 3, "#ff7f0e", "dash"),
)
BRANCH_WIDTH = 3.5  # a branch's lines are wide and translucent, so the run's stay visible where they coincide


def diagnostics_figure(
    numbers: dict[str, np.ndarray], *, branch: tuple[dict[str, np.ndarray], str] | None = None
) -> go.Figure:
    """Two panels over t: the shares and sizes (√ᾱ_t, √(1−ᾱ_t), ‖x_t‖'s RMS, std ε̂), and the range of x̂₀ with the
    clipped share on its own right axis (0–1).

    With `branch` = (its numbers, its label such as "branch from frame 20"), every quantity gets a second trace for
    the branch, in the same colour, wide and translucent, in the legend group of its quantity (one entry toggles
    both); the legend's title says which is which. The legend is one row under the x titles.
    The t axis is reversed (T on the left) so that a run, which goes from T down to 1, reads left to right.
    Two panels in one row, not four: the page draws this figure once a run ends, and Plotly's first drawing of a
    figure costs about 20 ms per panel on a 2-core machine (four panels: ~100 ms, one main-thread task).
    """
    figure = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=DIAGNOSTIC_PANELS,
        horizontal_spacing=0.1,
        specs=[[{}, {"secondary_y": True}]],
    )
    runs = [(numbers, None, 2.0, 1.0)] + ([(branch[0], branch[1], BRANCH_WIDTH, 0.45)] if branch else [])
    for values, label, width, opacity in runs:
        t = values["t"].astype(np.float32)
        for key, name, panel, colour, dash in DIAGNOSTIC_TRACES:
            figure.add_trace(
                go.Scatter(
                    x=t,
                    y=values[key].astype(np.float32),
                    name=name if label is None else f"{name} · {label}",
                    legendgroup=name,
                    showlegend=label is None,
                    mode="lines+markers" if t.size <= 60 else "lines",
                    marker=dict(size=4),
                    opacity=opacity,
                    line=dict(color=colour, dash=dash, width=width),
                ),
                row=1,
                col=min(panel, 2),
                secondary_y=panel == 3,
            )
    figure.update_xaxes(title_text=T_REVERSED, autorange="reversed", title_standoff=4)
    figure.update_yaxes(range=[0, 1.02], row=1, col=2, secondary_y=True, showgrid=False)
    legend_title = f"thin: run · wide, translucent: {branch[1]}" if branch else None
    figure.update_layout(
        height=460,
        # Room below for the x titles and the legend's row: margins Plotly would otherwise push out after drawing,
        # and then draw the whole figure a second time.
        margin=dict(l=40, r=40, t=70, b=110 if branch is None else 125),
        font=FONT,
        template="plotly_white",
        legend=dict(LEGEND_BELOW, y=-0.22, title=dict(text=legend_title, side="top") if legend_title else None),
    )
    figure.update_annotations(font_size=13)
    return figure


def comparison_figure(result) -> go.Figure:
    """Teacher-forced errors per t in each space (one line per model), the true targets' RMS, and the KL terms.

    `result` is an `explorer.diffusion.teacher.TeacherForcing` computed from a known x₀ (so errors and KL exist).
    Models differ in colour, dash and marker, so that curves lying on top of each other stay distinguishable. The
    KL panel says which terms of the bound it leaves out (L₀ and L_T) and why.
    """
    titles = [f"MSE in {view.quantity} space (log)" for view in FOUR_VIEWS]
    titles += ["size of each target: RMS", "KL term L<sub>t−1</sub> per dim (log)"]
    figure = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.04)
    t = paper_t(result.timesteps).astype(np.float32)
    for k, model in enumerate(result.models):
        colour = COLOURS[k % len(COLOURS)]
        dash, symbol = MODEL_DASHES[k % len(MODEL_DASHES)], MODEL_SYMBOLS[k % len(MODEL_SYMBOLS)]
        label = f"{model.name} ({view_of(model.prediction).quantity}-prediction)"
        curves = [getattr(model, f"{view.name}_mse") for view in FOUR_VIEWS] + [None, model.kl]
        for column, values in enumerate(curves, start=1):
            if values is None:
                continue
            figure.add_trace(
                go.Scatter(
                    x=t,
                    y=np.asarray(values, dtype=np.float32),
                    name=label,
                    legendgroup=label,
                    showlegend=column == 1,
                    mode="lines+markers",
                    marker=dict(size=6, symbol=symbol, maxdisplayed=25),
                    line=dict(color=colour, dash=dash, width=2),
                ),
                row=1,
                col=column,
            )
    sizes = result.target_rms()
    sizes_column = len(FOUR_VIEWS) + 1
    for k, view in enumerate(FOUR_VIEWS):
        values = sizes[view.name]
        figure.add_trace(
            go.Scatter(
                x=t,
                y=np.asarray(values, dtype=np.float32),
                name=f"RMS of true {view.quantity}",
                line=dict(color="black", dash=("solid", "dash", "dot", "dashdot")[k]),
            ),
            row=1,
            col=sizes_column,
        )
    figure.update_yaxes(type="log", exponentformat="power")
    figure.update_yaxes(type="linear", rangemode="tozero", row=1, col=sizes_column)
    figure.update_xaxes(title_text="t (paper step)")
    figure.update_layout(
        title=dict(text=KL_LEFT_OUT, font=dict(size=12), x=0.5, xanchor="center", y=0.98, yanchor="top"),
        height=440,
        margin=dict(l=45, r=30, t=80, b=135),  # drawn once: room for legend and labels
        font=FONT,
        template="plotly_white",
        legend=LEGEND_BELOW,
    )
    return figure
