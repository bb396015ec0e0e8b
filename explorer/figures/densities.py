"""Isotropic Gaussian mixtures on a grid: exact cell averages, the levels that hold a share of the mass, contours.

    code name        symbol                                   meaning
    mixture_cells    (1/|C|) ∫_C Σ_k w_k N(x; m_k, σ² I) dx   the exact average density over each grid cell C
    marginal_cells   q(x_t) = (1/N) Σ_n N(x_t; √ᾱ_t x_n, (1 − ᾱ_t) I)   the noised marginal of a finite data set
    reverse_cells    q(x_s | x_t) = Σ_n w_n N(μ̃(x_n, x_t), β̃ I)          the oracle's exact reverse, on its own grid
    mass_levels      c_p with ∫_{p(x) ≥ c_p} p = p                         highest-density regions holding share p
    contour_lines    {x : p(x) = c}                                         marching squares, one segment per cell

An isotropic Gaussian's mass in a cell factorises per axis,
    ∫_C N(x; m, σ²I) dx = [Φ((x_hi − m_x)/σ) − Φ((x_lo − m_x)/σ)] · [Φ((y_hi − m_y)/σ) − Φ((y_lo − m_y)/σ)],
so a whole [G_y, G_x] grid is one matrix product over the K components, and a Gaussian narrower than a cell is
never missed or aliased (a coarse grid of point values would be). Grids hold rows of y, as Plotly draws them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from explorer.diffusion.oracle import WEIGHT_FLOOR, ReverseMixture

REVERSE_CELLS = 40  # cells per axis of one point's local grid
REVERSE_SPREAD = 4.0  # the local grid reaches this many standard deviations β̃^½ beyond the heavy components


def mixture_cells(
    weights: torch.Tensor, means: torch.Tensor, variance: float, x_edges: np.ndarray, y_edges: np.ndarray
) -> np.ndarray:
    """Cell averages of Σ_k weights[k] N(x; means[k], variance·I) on the grid with these edges.

    weights: [K]; means: [K, 2]; x_edges: [G_x + 1], y_edges: [G_y + 1] (increasing). Returns float64
    [G_y, G_x]: each cell's exact mass divided by its area.
    """
    if not variance > 0:
        raise ValueError(f"a density needs a positive variance; got {variance} (point masses have none)")
    sigma = math.sqrt(variance)
    w, m = weights.double(), means.double()
    xe, ye = torch.from_numpy(np.asarray(x_edges, np.float64)), torch.from_numpy(np.asarray(y_edges, np.float64))
    px = torch.special.ndtr((xe[None, :] - m[:, :1]) / sigma).diff(dim=1)  # [K, G_x]: mass of each column
    py = torch.special.ndtr((ye[None, :] - m[:, 1:]) / sigma).diff(dim=1)  # [K, G_y]
    mass = (py.T * w[None, :]) @ px  # [G_y, G_x]
    area = np.diff(y_edges)[:, None] * np.diff(x_edges)[None, :]
    return mass.numpy() / area


def marginal_cells(data: torch.Tensor, alpha_cumprod: float, x_edges: np.ndarray, y_edges: np.ndarray) -> np.ndarray:
    """q(x_t) = (1/N) Σ_n N(x_t; √ᾱ_t x_n, (1 − ᾱ_t) I) of data [N, 2], as cell averages [G_y, G_x]."""
    points = data.double()
    weights = torch.full((points.shape[0],), 1.0 / points.shape[0], dtype=torch.float64)
    return mixture_cells(weights, math.sqrt(alpha_cumprod) * points, 1.0 - alpha_cumprod, x_edges, y_edges)


def centres(edges: np.ndarray) -> np.ndarray:
    """Cell centres [G] of edges [G + 1]."""
    return (edges[1:] + edges[:-1]) / 2


@dataclass(frozen=True)
class LocalDensity:
    """One point's exact reverse on its own grid: edges [G + 1] per axis, cells float64 [G_y, G_x]."""

    x_edges: np.ndarray
    y_edges: np.ndarray
    cells: np.ndarray
    mean: np.ndarray  # E[x_s | x_t], [2]


def reverse_cells(mixture: ReverseMixture, also: np.ndarray, cells: int = REVERSE_CELLS) -> LocalDensity:
    """Cell averages of the first mixture of `mixture` (one point x_t) on a grid around its heavy components.

    also: [M, 2] points the grid must also cover (where the run sent the point). Components under WEIGHT_FLOOR of
    the largest weight do not shape the grid (the oracle's own rule); it reaches REVERSE_SPREAD·β̃^½ beyond the rest.
    """
    weights, means = mixture.weights[0], mixture.means[0]  # [N], [N, 2]
    heavy = means[weights > WEIGHT_FLOOR * weights.max()].numpy()  # [K, 2]
    corners = np.concatenate([heavy, np.asarray(also, np.float64).reshape(-1, 2)])
    spread = REVERSE_SPREAD * math.sqrt(mixture.variance)
    low, high = corners.min(axis=0) - spread, corners.max(axis=0) + spread
    x_edges, y_edges = np.linspace(low[0], high[0], cells + 1), np.linspace(low[1], high[1], cells + 1)
    density = mixture_cells(weights, means, mixture.variance, x_edges, y_edges)
    return LocalDensity(x_edges, y_edges, density, mixture.mean()[0].numpy())


def mass_levels(cells: np.ndarray, area: float, shares: tuple[float, ...]) -> np.ndarray:
    """For each share p, the density c_p whose highest-density cells (density ≥ c_p) hold p of the grid's mass.

    cells: [G_y, G_x] cell averages of equal `area`. Returns float64 [len(shares)], decreasing as p grows.
    """
    ordered = np.sort(cells.ravel())[::-1]  # densest first
    mass = np.cumsum(ordered) * area
    total = mass[-1]
    return np.array([ordered[min(np.searchsorted(mass, p * total), ordered.size - 1)] for p in shares])


# The four edges of a cell, as (corner, corner) of its corners 0 = (j, i), 1 = (j, i+1), 2 = (j+1, i+1), 3 = (j+1, i).
_EDGES = ((0, 1), (1, 2), (3, 2), (0, 3))  # bottom, right, top, left
_CORNER_EDGES = ((0, 3), (0, 1), (1, 2), (2, 3))  # the two edges that meet at each corner


def contour_lines(values: np.ndarray, xs: np.ndarray, ys: np.ndarray, level: float) -> np.ndarray:
    """The curve values = level by marching squares: float64 [3·S, 2], S segments each followed by a NaN row.

    values: [G_y, G_x] sampled at (xs[i], ys[j]). Crossings are placed by linear interpolation along each cell
    edge; a saddle cell is split by the value at its centre (the mean of its corners).
    """
    corners = np.stack([values[:-1, :-1], values[:-1, 1:], values[1:, 1:], values[1:, :-1]], axis=-1)  # [Gy-1, Gx-1, 4]
    grid = np.stack(np.meshgrid(xs, ys), axis=-1)  # [G_y, G_x, 2]
    position = np.stack([grid[:-1, :-1], grid[:-1, 1:], grid[1:, 1:], grid[1:, :-1]], axis=-2)  # [Gy-1, Gx-1, 4, 2]
    above = corners >= level
    crossings, points = [], []
    for a, b in _EDGES:
        va, vb = corners[..., a], corners[..., b]
        crosses = above[..., a] != above[..., b]
        share = np.where(crosses, (level - va) / np.where(crosses, vb - va, 1.0), 0.0)[..., None]
        crossings.append(crosses)
        points.append(position[..., a, :] + share * (position[..., b, :] - position[..., a, :]))
    crossings, points = np.stack(crossings, -1), np.stack(points, -2)  # [.., 4], [.., 4, 2]
    count = crossings.sum(-1)
    segments = []
    plain = count == 2
    first = np.argmax(crossings, axis=-1)  # the first crossing edge of each cell
    second = 3 - np.argmax(crossings[..., ::-1], axis=-1)  # the last one
    segments.append(
        np.stack(
            [
                np.take_along_axis(points, first[..., None, None], -2)[..., 0, :][plain],
                np.take_along_axis(points, second[..., None, None], -2)[..., 0, :][plain],
            ],
            1,
        )
    )
    saddle = count == 4
    centre_above = corners.mean(-1) >= level
    for corner, (e, f) in enumerate(_CORNER_EDGES):  # cut off each corner on the other side of the centre
        cut = saddle & (above[..., corner] != centre_above)
        segments.append(np.stack([points[..., e, :][cut], points[..., f, :][cut]], 1))
    pairs = np.concatenate(segments)  # [S, 2, 2]
    gaps = np.full((pairs.shape[0], 1, 2), np.nan)
    return np.concatenate([pairs, gaps], axis=1).reshape(-1, 2)
