"""Figures for the posterior q(x_{t−1} | x_t, x_0): the 1-D product of two Gaussians, and 2-D reverse densities.

Product of Gaussians, for one pixel (Ho et al. 2020, eqs. 2, 4, 6–7), as functions of y = x_{t−1}:

    likelihood  q(x_t | x_{t−1} = y) = N(x_t; √α_t y, β_t) = N(y; x_t/√α_t, β_t/α_t) / √α_t
                drawn normalised in y, N(y; x_t/√α_t, β_t/α_t) (area 1), so that every curve is a density in y;
                flat in y when α_t = 0 (zero terminal SNR at t = T): x_T then says nothing about x_{T−1}
    prior       q(x_{t−1} = y | x_0) = N(y; √ᾱ_{t−1} x_0, 1 − ᾱ_{t−1});  at t = 1 the point mass δ(y − x_0)
    posterior   q(x_{t−1} = y | x_t, x_0) = N(y; μ̃_t, β̃_t)  ∝ likelihood × prior;  at t = 1 also δ(y − x_0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from explorer.diffusion.indexing import previous_t, timestep_of
from explorer.diffusion.schedules import Schedule
from explorer.figures.plain import PlainFigure, axis_names, axis_suffix, colorscale, subplot_layout, template
from explorer.figures.schedules import FONT

CURVE_POINTS = 600


def normal_pdf(y: np.ndarray, mean: float, variance: float) -> np.ndarray:
    """N(y; mean, variance) for float64 y; a zero variance gives NaN (a point mass cannot be drawn)."""
    if variance <= 0:
        return np.full_like(y, np.nan)
    return np.exp(-0.5 * (y - mean) ** 2 / variance) / math.sqrt(2 * math.pi * variance)


@dataclass(frozen=True)
class GaussianProduct:
    """The curves of the 1-D view on a common grid y (float64 [P] each), None where a curve does not exist."""

    y: np.ndarray
    likelihood: np.ndarray | None  # N(y; x_t/√α_t, β_t/α_t) = √α_t·q(x_t | x_{t−1}=y), area 1; None: flat (α_t = 0)
    prior: np.ndarray | None  # q(x_{t−1} = y | x_0); None at t = 1, where it is δ(y − x_0)
    posterior: np.ndarray | None  # N(y; μ̃, β̃); None at t = 1, where it is δ(y − x_0)
    product: np.ndarray | None  # likelihood × prior, normalised numerically: lies on `posterior`; None at t = 1
    mean: float
    variance: float
    point_mass: float | None  # at t = 1: x_0, where prior and posterior put all their mass; else None

    @property
    def likelihood_is_flat(self) -> bool:
        """α_t = 0 (zero terminal SNR at t = T): q(x_T | x_{T−1} = y) does not depend on y."""
        return self.likelihood is None


def gaussian_product(
    schedule: Schedule, t: int, x0: float, x_t: float, *, grid: np.ndarray | None = None
) -> GaussianProduct:
    """The likelihood, prior and posterior of x_{t−1} for one pixel at paper step t ≥ 1.

    `grid` (float64 [P]) replaces the automatic one, which spans a few posterior widths around μ̃.
    """
    i = timestep_of(t)
    alpha, beta = schedule.alphas[i], schedule.betas[i]
    flat = alpha == 0
    like_mean, like_var = (0.0, math.inf) if flat else (x_t / math.sqrt(alpha), beta / alpha)
    prior_mean, prior_var = math.sqrt(schedule.alphas_cumprod_prev[i]) * x0, 1.0 - schedule.alphas_cumprod_prev[i]
    mean = schedule.posterior_mean_coef_x0[i] * x0 + schedule.posterior_mean_coef_xt[i] * x_t
    variance = float(schedule.posterior_variance[i])
    if grid is None:
        spreads = [math.sqrt(v) for v in (like_var, prior_var, variance) if 0 < v < math.inf]
        width = 4 * min(max(spreads, default=0.05), 3.0)
        centre = float(np.clip(mean, -3, 3))
        grid = np.linspace(centre - width - 0.05, centre + width + 0.05, CURVE_POINTS)
    y = np.asarray(grid, dtype=np.float64)
    likelihood = None if flat else normal_pdf(y, like_mean, like_var)
    if prior_var <= 0:  # t = 1: ᾱ_0 = 1, the prior is δ(y − x_0), and so is the posterior (β̃_1 = 0, μ̃_1 = x_0)
        return GaussianProduct(y, likelihood, None, None, None, float(mean), variance, point_mass=float(x0))
    # likelihood × prior in log space: both factors can underflow where the posterior lives (a flat one drops out)
    log_product = -0.5 * (y - prior_mean) ** 2 / prior_var
    if not flat:
        log_product -= 0.5 * (y - like_mean) ** 2 / like_var
    product = np.exp(log_product - log_product.max())
    area = np.trapezoid(product, y)
    product = product / area if area > 0 else np.full_like(y, np.nan)
    prior = normal_pdf(y, prior_mean, prior_var)
    return GaussianProduct(y, likelihood, prior, normal_pdf(y, mean, variance), product, float(mean), variance, None)


def likelihood_label(t: int) -> str:
    """Legend text of the likelihood curve: what is drawn, √α_t·q = N(y; x_t/√α_t, β_t/α_t), a density in y."""
    p = previous_t(t)
    return f"likelihood √α<sub>{t}</sub>·q(x<sub>{t}</sub> | x<sub>{p}</sub>=y): normalised in y (area 1)"


def _curve(values: np.ndarray, y: np.ndarray, name: str, colour: str, dash: str) -> dict:
    return dict(
        type="scatter",
        x=y.astype(np.float32),
        y=np.asarray(values, dtype=np.float32),
        name=name,
        mode="lines",
        line=dict(color=colour, dash=dash, width=3 if dash == "solid" else 2),
    )


def _point_mass(curves: GaussianProduct, t: int) -> dict:
    """The vertical line of δ(y − x₀), with an arrow head that says: unbounded."""
    mass, p = curves.point_mass, previous_t(t)
    heights = [] if curves.likelihood is None else [float(np.nanmax(curves.likelihood))]
    top = 1.1 * max([*heights, 1.0])
    return dict(
        type="scatter",
        x=[mass, mass],
        y=[0.0, top],
        name=f"prior q(x<sub>{p}</sub>=y | x₀) = δ(y − x₀) = posterior: point mass at x₀ = {mass:.3g}",
        mode="lines+markers",
        marker=dict(symbol=["circle", "triangle-up"], size=[1, 12], color="black"),
        line=dict(color="black", width=3),
    )


def gaussian_product_figure(curves: GaussianProduct, t: int) -> PlainFigure:
    """The 1-D view: likelihood × prior = posterior, each curve a density in y = x_{t−1}.

    At t = 1 the prior and the posterior are the point mass δ(y − x₀), drawn as a vertical line; no product curve.
    When α_t = 0 the likelihood is flat in y: said in the title, and the product is the prior.
    """
    p, y, traces = previous_t(t), curves.y, []
    if curves.likelihood is not None:
        traces.append(_curve(curves.likelihood, y, likelihood_label(t), "#1f77b4", "dot"))
    if curves.point_mass is not None:
        traces.append(_point_mass(curves, t))
        title = f"One pixel at t = {t}: the prior is δ(y − x₀), so the posterior is the point mass at x₀"
    else:
        product_name = "likelihood × prior, normalised"
        if curves.likelihood_is_flat:
            product_name += " (= prior: the likelihood is flat)"
        styles = (
            (curves.prior, f"prior q(x<sub>{p}</sub>=y | x₀)", "#2ca02c", "dash"),
            (curves.product, product_name, "#ff7f0e", "solid"),
            (curves.posterior, f"posterior N(μ̃={curves.mean:.3g}, β̃={curves.variance:.3g})", "black", "dashdot"),
        )
        traces += [_curve(values, y, name, colour, dash) for values, name, colour, dash in styles]
        title = f"One pixel at t = {t}: the posterior is the product of two Gaussians"
        if curves.likelihood_is_flat:
            flat = f"α<sub>{t}</sub> = 0, the likelihood is flat in y (not drawn)"
            title = f"One pixel at t = {t}: {flat}; posterior = prior"
    layout = dict(
        title=dict(text=title),
        xaxis=dict(title=dict(text=f"y = x<sub>{p}</sub>")),
        yaxis=dict(title=dict(text="density in y")),
        height=360,
        margin=dict(l=50, r=20, t=50, b=55),  # drawn once: room for legend and labels
        font=FONT,
        template=template(),
        legend=dict(x=0.01, y=0.99, bgcolor="rgba(255,255,255,0.7)"),
    )
    return PlainFigure(traces, layout)


@dataclass(frozen=True)
class DensityPanel:
    """One heatmap: a density on a regular grid (float [G_y, G_x]) with a title."""

    title: str
    density: np.ndarray


def _marker(point: np.ndarray, name: str, symbol: str, axes: dict, legend: bool) -> dict:
    return dict(
        type="scatter",
        x=[float(point[0])],
        y=[float(point[1])],
        mode="markers",
        name=name,
        showlegend=legend,
        marker=dict(symbol=symbol, size=12, color="white", line=dict(width=1.5, color="red")),
        **axes,
    )


def reverse_density_figure(
    xs: np.ndarray,
    ys: np.ndarray,
    panels: Sequence[DensityPanel],
    *,
    x_t: np.ndarray,
    x0: np.ndarray,
    data: np.ndarray | None = None,
) -> PlainFigure:
    """Heatmaps side by side on the same axes, with x_t (×), x₀ (★) and faint data points on each."""
    layout = subplot_layout(1, len(panels), [p.title for p in panels], shared_yaxes=True, horizontal_spacing=0.03)
    x, y, traces = xs.astype(np.float32), ys.astype(np.float32), []
    for column, panel in enumerate(panels, start=1):
        axes = dict(xaxis=f"x{axis_suffix(column)}", yaxis=f"y{axis_suffix(column)}")
        traces.append(
            dict(
                type="heatmap",
                x=x,
                y=y,
                z=np.asarray(panel.density, dtype=np.float32),
                colorscale=colorscale("Viridis"),
                showscale=False,
                hovertemplate="(%{x:.2f}, %{y:.2f}) density %{z:.3g}<extra></extra>",
                **axes,
            )
        )
        if data is not None:
            faint = dict(size=2, color="rgba(255,255,255,0.35)")
            traces.append(
                dict(
                    type="scatter",
                    x=data[:, 0],
                    y=data[:, 1],
                    mode="markers",
                    marker=faint,
                    showlegend=False,
                    hoverinfo="skip",
                    **axes,
                )
            )
        traces += [_marker(x_t, "x_t", "x", axes, column == 1), _marker(x0, "x₀", "star", axes, column == 1)]
    for name in axis_names(layout, "x"):
        layout[name].update(range=[float(xs[0]), float(xs[-1])], constrain="domain")
    for name in axis_names(layout, "y"):
        layout[name]["range"] = [float(ys[0]), float(ys[-1])]
    for annotation in layout["annotations"]:
        annotation["font"]["size"] = 14
    layout.update(
        height=420,
        margin=dict(l=40, r=20, t=60, b=50),
        font=FONT,
        template=template(),
        legend=dict(orientation="h", y=-0.12),
    )
    return PlainFigure(traces, layout)


def message_figure(text: str) -> PlainFigure:
    """An empty figure that says why there is nothing to draw (never a broken plot)."""
    note = dict(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=16))
    layout = dict(
        annotations=[note],
        height=200,
        xaxis=dict(visible=False),
        yaxis=dict(visible=False),
        template=template(),
        font=FONT,
    )
    return PlainFigure([], layout)
