"""The animated 2-D cloud: a run's points moving from noise to data over the exact densities of a finite data set.

For a run of a 2-D model and the finite set {x_n} (N points) its exact denoiser reverses, each frame draws

    x_t of the batch        orange points, with faint trails of the last TRAIL_FRAMES frames
    q(x_t)                  blue picture beneath: (1/N) Σ_n N(x_t; √ᾱ_t x_n, (1 − ᾱ_t) I), exact cell averages
    the reverse             red contours for one highlighted point: the reverse of the run's jump t → s that its
                            sampler follows, mixed over the exact weights w_n(x_t) (`drawn_reverse`): DDPM's exact
                            q(x_s | x_t), DDIM's q_σ(x_s | x_t, x_n); drawn as the regions holding MASS_SHARES of
                            its mass; + its mean (for an exact denoiser, where the run's step goes before noise)
    the run's x_s           black ×: where the run sent that point

Frames: at most `MAX_FRAMES` evenly spaced steps of the run (the first and the last always), then the final
samples x₀. Step k shows x_t entering step k, at paper t = timesteps[k] + 1, and lands on s (`frame_levels`): a
corrector call (Heun's 2nd-order call, PNDM's second) lands on its own level, s = t, and has no jump to draw.

Every trace is a scatter trace and the density is a layout image: a Plotly animation redraws non-scatter traces
(heatmap, contour) only after removing them, so they would flicker off at every frame while playing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from _plotly_utils.utils import convert_to_base64
from PIL import Image
from plotly.io.json import to_json_plotly

from explorer.diffusion.indexing import frame_of, paper_t
from explorer.diffusion.oracle import ReverseMixture, reverse_between
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.settings import END_OF_RUN, SamplerKind, SamplerSettings
from explorer.diffusion.trajectory import CompactTrajectory
from explorer.figures.densities import (
    LocalDensity,
    centres,
    contour_lines,
    marginal_cells,
    mass_levels,
    reverse_cells,
)
from explorer.figures.images import png_data_url
from explorer.figures.schedules import FONT

MAX_FRAMES = 60  # evenly spaced steps of the run shown (plus the final samples)
MAX_POINTS = 1024  # points of the batch drawn per frame (evenly strided when the batch is larger)
TRAIL_POINTS = 256  # points that draw a trail (evenly strided over those drawn)
TRAIL_FRAMES = 5  # a trail reaches back this many frames
GRID_CELLS = 60  # cells per axis of the marginal's grid
MIN_HALF_WIDTH = 3.0  # the view spans at least [−3, 3]² (x_T ~ N(0, I))
MAX_HALF_WIDTH = 6.0
FRAME_MILLISECONDS = 120


# --- the cloud of one run -----------------------------------------------------------------------------


def frame_positions(num_steps: int, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """At most `max_frames` evenly spaced positions k in 0..num_steps − 1, the first and the last always (int64)."""
    if num_steps < 1 or max_frames < 2:
        raise ValueError(f"a cloud needs at least 1 step and 2 frames; got {num_steps} steps, {max_frames} frames")
    return np.unique(np.round(np.linspace(0, num_steps - 1, min(max_frames, num_steps))).astype(np.int64))


def strided(count: int, limit: int) -> np.ndarray:
    """`min(count, limit)` indices evenly strided over 0..count − 1 (int64)."""
    return np.unique(np.round(np.linspace(0, count - 1, min(count, limit))).astype(np.int64))


def frame_levels(compact: CompactTrajectory) -> tuple[np.ndarray, np.ndarray]:
    """0-based timesteps of each step's x_t and of the level its x_s lands on (int64 [S] each; −1 = the data).

    x_prev of step k is x_t of step k + 1, so it lands on timesteps[k + 1], the last step on the run's final
    timestep. Heun's and PNDM's corrector calls repeat a timestep (876, 751, 751, 626, …): such a call lands on
    its own level (s = t). The one place that reads where a step lands.
    """
    return compact.timesteps.astype(np.int64), compact.prev_timesteps.astype(np.int64)


def _alpha_bar(schedule: Schedule, timestep: int) -> float:
    """ᾱ of a 0-based timestep; 1 for END_OF_RUN (the data)."""
    return 1.0 if timestep == END_OF_RUN else float(schedule.alphas_cumprod[timestep])


@dataclass(frozen=True)
class DrawnReverse:
    """Which reverse the cloud draws for a run: eta None is the exact q(x_s | x_t), else DDIM's with this η."""

    eta: float | None
    name: str  # HTML, for the legend and the caption
    note: str  # one sentence for the caption: what the run's sampler does with it


def drawn_reverse(settings: SamplerSettings) -> DrawnReverse:
    """The reverse a run's sampler follows: DDPM's exact q(x_s | x_t), DDIM's q_σ(x_s | x_t, x̂₀) with its η; for a
    checkpoint's own scheduler the exact q(x_s | x_t), labelled as not the update that scheduler makes."""
    exact = "exact q(x<sub>s</sub> | x<sub>t</sub>)"
    if settings.sampler is SamplerKind.DDIM:
        eta = float(settings.eta)
        mixed = "Σ<sub>n</sub> w<sub>n</sub> q<sub>σ</sub>(x<sub>s</sub> | x<sub>t</sub>, x<sub>n</sub>)"
        name = f"DDIM's reverse (η = {eta:g}): {mixed}"
        note = (
            "DDIM does not follow the Markov reverse q(x<sub>s</sub> | x<sub>t</sub>): each component is its "
            "q<sub>σ</sub>(x<sub>s</sub> | x<sub>t</sub>, x̂₀ = x<sub>n</sub>), mean √ᾱ<sub>s</sub> x<sub>n</sub> + "
            "√(1 − ᾱ<sub>s</sub> − σ²) ε<sub>n</sub>, ε<sub>n</sub> = (x<sub>t</sub> − √ᾱ<sub>t</sub> "
            "x<sub>n</sub>)/√(1 − ᾱ<sub>t</sub>), variance σ² = η² β̃"
        )
        if eta == 0:
            note += (
                "; at η = 0 every component is a point mass, so no contours are drawn, only the mean, which is "
                "where an exact denoiser's DDIM step goes"
            )
        return DrawnReverse(eta, name, note + ".")
    if settings.sampler is SamplerKind.SCHEDULER:
        return DrawnReverse(
            None,
            exact,
            "The run used the checkpoint's own scheduler, whose update is not drawn: the contours are the exact "
            "reverse of the forward process between the frame's noise levels, for comparison.",
        )
    return DrawnReverse(
        None,
        exact,
        "DDPM's step N(μ̃(x̂₀, x<sub>t</sub>), σ²) approximates this mixture; with the exact denoiser its mean is "
        "the mixture's mean.",
    )


@dataclass(frozen=True)
class CloudFrame:
    """One frame: paper t → s (t = 0: the final samples, no step), the drawn points [P, 2] and densities."""

    t: int
    s: int
    points: np.ndarray  # [P, 2] float32: x_t of the drawn points (the samples in the final frame)
    marginal: np.ndarray | None  # [G, G] cell averages of q(x_t); None in the final frame
    reverse: LocalDensity | None  # the drawn reverse of the highlighted point; None where it is point masses
    highlight: np.ndarray  # [2]: the highlighted point's x_t
    model_next: np.ndarray | None  # [2]: where the run sent it (its x_s); None in the final frame
    exact_mean: np.ndarray | None  # [2]: the drawn reverse's mean; None in the final frame and for s = t
    alpha_t: float = 1.0  # ᾱ of x_t
    alpha_s: float = 1.0  # ᾱ of the level the step lands on


@dataclass(frozen=True)
class Cloud:
    """Every frame of one run's cloud on one square grid: edges [G + 1] per axis (the same for x and y)."""

    edges: np.ndarray
    frames: tuple[CloudFrame, ...]
    data: np.ndarray  # [N, 2]: the finite training set
    shown: np.ndarray  # int64 [P]: which points of the batch are drawn
    trails: np.ndarray  # int64 [R]: rows of `shown` that draw a trail
    highlighted: int  # index in the batch
    batch_size: int
    num_steps: int
    reverse: DrawnReverse  # which reverse the contours and the mean are

    @property
    def centres(self) -> np.ndarray:
        return centres(self.edges)


def _half_width(states: torch.Tensor, data: torch.Tensor) -> float:
    """Half the side of the square view: the data and 99.5 % of the drawn coordinates, within [3, 6]."""
    reach = max(float(states.abs().float().quantile(0.995)), float(data.abs().max()) + 0.3)
    return float(np.clip(reach, MIN_HALF_WIDTH, MAX_HALF_WIDTH))


def run_cloud(
    compact: CompactTrajectory, data: torch.Tensor, highlighted: int = 0, max_frames: int = MAX_FRAMES
) -> Cloud:
    """The cloud of a 2-D `CompactTrajectory` over the finite set data [N, 2] its densities are exact for.

    highlighted: the batch index whose reverse is drawn (`drawn_reverse`). The run's own schedule gives ᾱ and β̃.
    """
    shape = tuple(compact.samples.shape[1:])
    if shape != (2,):
        raise ValueError(f"the cloud is for runs of 2-D points; this run's samples have shape {list(shape)}")
    batch, total = compact.samples.shape[0], len(compact)
    if isinstance(highlighted, bool) or not 0 <= int(highlighted) < batch or int(highlighted) != highlighted:
        raise ValueError(f"highlighted point must be a whole number in [0, {batch - 1}]; got {highlighted!r}")
    highlighted = int(highlighted)
    schedule: Schedule = compact.settings.schedule
    positions = frame_positions(total, max_frames)
    shown = strided(batch, MAX_POINTS)
    states = compact.x_t[torch.from_numpy(positions)][:, torch.from_numpy(shown)]  # [F, P, 2]
    edges = np.linspace(-1.0, 1.0, GRID_CELLS + 1) * _half_width(states, data)
    points = data.double()
    drawn = drawn_reverse(compact.settings)
    timesteps, landings = frame_levels(compact)
    frames = []
    for k in positions:
        timestep, prev = int(timesteps[k]), int(landings[k])
        x_t = compact.x_t[k].double()  # [B, 2]
        one = x_t[highlighted : highlighted + 1]  # [1, 2]
        mixture: ReverseMixture = reverse_between(points, schedule, one, timestep, prev, eta=drawn.eta)
        x_s = compact.view("x_prev", int(k))[highlighted].double().numpy()
        reverse = None if mixture.variance <= 0 else reverse_cells(mixture, x_s[None])
        frames.append(
            CloudFrame(
                t=int(paper_t(timestep)),
                s=int(paper_t(prev)),
                points=x_t[torch.from_numpy(shown)].float().numpy(),
                marginal=marginal_cells(points, float(schedule.alphas_cumprod[timestep]), edges, edges),
                reverse=reverse,
                highlight=x_t[highlighted].numpy(),
                model_next=x_s,
                exact_mean=None if prev == timestep else mixture.mean()[0].numpy(),
                alpha_t=_alpha_bar(schedule, timestep),
                alpha_s=_alpha_bar(schedule, prev),
            )
        )
    samples = compact.samples.double()
    final = _alpha_bar(schedule, int(landings[-1]))
    frames.append(
        CloudFrame(
            0,
            0,
            samples[torch.from_numpy(shown)].float().numpy(),
            None,
            None,
            samples[highlighted].numpy(),
            None,
            None,
            alpha_t=final,
            alpha_s=final,
        )
    )
    trails = strided(len(shown), TRAIL_POINTS)
    return Cloud(edges, tuple(frames), data.double().numpy(), shown, trails, highlighted, batch, total, drawn)


# --- the animated figure ------------------------------------------------------------------------------

HIGHLIGHT = "#c2185b"
POINTS = "#ff7f0e"
DENSITY_RGB = np.array([[255, 255, 255], [198, 219, 239], [107, 174, 214], [8, 81, 156]], dtype=np.float64)
DENSITY_STOPS = np.array([0.0, 0.25, 0.6, 1.0])  # white at 0, dark blue at each frame's peak
MASS_SHARES = (0.25, 0.5, 0.75, 0.95)  # the reverse's contours enclose these shares of its mass
TRACES = ("data", "trails", "points", "reverse", "highlight", "model step", "exact mean")


def density_picture(cells: np.ndarray) -> str:
    """A PNG data URL of cells [G_y, G_x] (rows of increasing y): white at 0, dark blue at its peak."""
    scaled = cells / cells.max() if cells.max() > 0 else np.zeros_like(cells)
    rgb = np.stack([np.interp(scaled, DENSITY_STOPS, DENSITY_RGB[:, c]) for c in range(3)], axis=-1)
    picture = Image.fromarray(np.flipud(rgb).round().astype(np.uint8), mode="RGB")  # PNG rows run top down
    return png_data_url(picture)


def reverse_contours(density: LocalDensity) -> np.ndarray:
    """The contours of one point's exact reverse enclosing MASS_SHARES of its mass: [M, 2], NaN between segments."""
    area = float(np.diff(density.x_edges)[0] * np.diff(density.y_edges)[0])
    levels = mass_levels(density.cells, area, MASS_SHARES)
    xs, ys = centres(density.x_edges), centres(density.y_edges)
    return np.concatenate([contour_lines(density.cells, xs, ys, level) for level in levels])


def _f32(values) -> np.ndarray:
    """A float32 copy (Plotly sends it as a compact base64 typed array)."""
    return np.ascontiguousarray(values, dtype=np.float32).reshape(-1)


def _xy(points) -> dict[str, np.ndarray]:
    """x and y of points [M, 2] (or none)."""
    points = np.zeros((0, 2)) if points is None else np.asarray(points).reshape(-1, 2)
    return {"x": _f32(points[:, 0]), "y": _f32(points[:, 1])}


def _trail(cloud: Cloud, j: int) -> np.ndarray:
    """The trails into frame j: each trail point's last TRAIL_FRAMES + 1 positions, NaN between points, [M, 2]."""
    first = max(0, j - TRAIL_FRAMES)
    path = np.stack([cloud.frames[i].points[cloud.trails] for i in range(first, j + 1)], axis=1)  # [R, L, 2]
    gap = np.full((path.shape[0], 1, 2), np.nan, dtype=np.float32)
    return np.concatenate([path, gap], axis=1).reshape(-1, 2)  # [R·(L+1), 2]


def _frame_data(cloud: Cloud, j: int) -> list[dict]:
    """Every trace's values in frame j, in the order of TRACES (empty where a frame has nothing to draw)."""
    frame = cloud.frames[j]
    final = frame.marginal is None
    step = None if final else np.stack([frame.highlight, frame.model_next])  # from x_t to the run's x_s
    return [
        _xy(cloud.data if final else None),
        _xy(_trail(cloud, j)),
        _xy(frame.points),
        _xy(None if frame.reverse is None else reverse_contours(frame.reverse)),
        _xy(frame.highlight),
        _xy(step),
        _xy(frame.exact_mean),
    ]


def _frame_layout(cloud: Cloud, j: int) -> dict:
    """The title of frame j and its density picture (none for the final samples)."""
    frame, half = cloud.frames[j], float(cloud.edges[-1])
    image = dict(visible=False)  # the final samples: no density (an empty list would keep the last picture)
    if frame.marginal is not None:
        image = dict(
            visible=True,
            source=density_picture(frame.marginal),
            xref="x",
            yref="y",
            x=-half,
            y=half,
            sizex=2 * half,
            sizey=2 * half,
            sizing="stretch",
            layer="below",
        )
    return dict(title=dict(text=frame_title(cloud, j), x=0.01, xanchor="left"), images=[image])


def frame_title(cloud: Cloud, j: int) -> str:
    """What frame j shows, in one line."""
    frame, count = cloud.frames[j], len(cloud.shown)
    if frame.marginal is None:
        return f"the final samples x₀ ({count} points) over the {len(cloud.data):,} training points (grey)"
    s = f"{frame.s}" if frame.s > 0 else "0 (data)"
    corrector = " (a corrector call: it lands on its own noise level, no jump)" if frame.s == frame.t else ""
    return (
        f"t = {frame.t} → {s}{corrector}: x<sub>t</sub> of {count} points · blue: exact q(x<sub>t</sub>), darkest = "
        f"{frame.marginal.max():.3g} · frame {frame_of(j)} of {len(cloud.frames)}"
    )


def frame_name(cloud: Cloud, j: int) -> str:
    """The slider label of frame j: its paper t (with ′ for each earlier frame at the same t: Heun and PNDM call the
    model twice at one t, and Plotly finds frames by name), or 0 (x₀) for the final samples."""
    frame = cloud.frames[j]
    if frame.marginal is None:
        return "0 (x₀)"
    repeats = sum(other.t == frame.t and other.marginal is not None for other in cloud.frames[:j])
    return str(frame.t) + "′" * repeats


def reverse_name(cloud: Cloud) -> str:
    """The name of the reverse the contours draw (HTML)."""
    return cloud.reverse.name


def _styles(cloud: Cloud) -> list[dict]:
    """The traces of TRACES with their styles (all scatter: see the module docstring)."""
    k, trailed, shown = cloud.highlighted, len(cloud.trails), len(cloud.shown)
    shares = ", ".join(f"{round(100 * p)}" for p in MASS_SHARES)
    return [
        dict(
            marker=dict(size=3, color="rgba(90, 90, 90, 0.55)"),
            mode="markers",
            hoverinfo="skip",
            name=f"training set ({len(cloud.data):,} points)",
        ),
        dict(
            mode="lines",
            line=dict(width=0.8, color="rgba(60, 60, 60, 0.18)"),
            hoverinfo="skip",
            name=f"trails ({trailed} of {shown} points, last {TRAIL_FRAMES} frames)",
        ),
        dict(
            mode="markers",
            marker=dict(size=4, color=POINTS, opacity=0.75),
            hoverinfo="skip",
            name=f"x<sub>t</sub> ({shown} of {cloud.batch_size} points)",
        ),
        dict(
            mode="lines",
            line=dict(width=1.5, color=HIGHLIGHT),
            hoverinfo="skip",
            name=f"{reverse_name(cloud)} of point {k}: {shares} % of its mass",
        ),
        dict(
            mode="markers",
            marker=dict(size=14, symbol="circle-open", color=HIGHLIGHT, line=dict(width=2.5)),
            name=f"point {k}: x<sub>t</sub>",
        ),
        dict(
            mode="lines+markers",
            line=dict(width=1.5, color="black"),
            marker=dict(size=[0, 12], symbol="x", color="black"),
            name="where the run sent it: x<sub>s</sub>",
        ),
        dict(
            mode="markers",
            marker=dict(size=13, symbol="cross-thin-open", color=HIGHLIGHT, line=dict(width=2.5)),
            name="its mean" if cloud.reverse.eta is not None else "exact E[x<sub>s</sub> | x<sub>t</sub>]",
        ),
    ]


def _controls(cloud: Cloud) -> dict:
    """Plotly's play/pause buttons and frame slider: the animation runs in the browser."""
    jump = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    play = dict(frame=dict(duration=FRAME_MILLISECONDS, redraw=True), fromcurrent=True, transition=dict(duration=0))
    pause = dict(mode="immediate", frame=dict(duration=0, redraw=False), transition=dict(duration=0))
    names = [frame_name(cloud, j) for j in range(len(cloud.frames))]
    buttons = [
        dict(label="▶ Play", method="animate", args=[None, play]),
        dict(label="❚❚ Pause", method="animate", args=[[None], pause]),
    ]
    return dict(
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                showactive=False,
                x=0,
                y=-0.12,
                xanchor="left",
                yanchor="top",
                pad=dict(t=0, r=10),
                buttons=buttons,
            )
        ],
        sliders=[
            dict(
                active=0,
                x=0.25,
                len=0.75,
                y=-0.1,
                yanchor="top",
                currentvalue=dict(prefix="t = ", font=dict(size=14, color="#222")),
                font=dict(color="rgba(0, 0, 0, 0)"),  # up to 61 labels would overlap: the current one is shown above
                pad=dict(t=10),
                steps=[dict(label=name, method="animate", args=[[name], jump]) for name in names],
            )
        ],
    )


@dataclass(frozen=True, eq=False)
class AnimatedFigure:
    """A Plotly figure with frames as the plain dicts plotly.js reads (no per-property validation while building).

    gr.Plot calls `to_json()`; NumPy arrays become plotly.js typed arrays. `validated()` builds the `go.Figure`,
    which raises on any property plotly does not know (for tests).
    """

    data: list[dict[str, Any]]
    layout: dict[str, Any]
    frames: list[dict[str, Any]]

    def to_plotly_json(self) -> dict[str, Any]:
        """{"data", "layout", "frames"} with NumPy arrays as typed-array specs (a copy: the figure is unchanged)."""
        tree = copy.deepcopy({"data": self.data, "layout": self.layout, "frames": self.frames})
        convert_to_base64(tree)
        return tree

    def to_json(self) -> str:
        """The JSON gr.Plot sends to the browser (frames included: the page adds them, see ui/cloud.py)."""
        return to_json_plotly(self.to_plotly_json())

    def validated(self) -> go.Figure:
        """The same figure as a `go.Figure` (slow for a large run): ValueError on any unknown property."""
        return go.Figure({"data": self.data, "layout": self.layout, "frames": self.frames})


def cloud_figure(cloud: Cloud, token: str = "") -> AnimatedFigure:
    """One Plotly figure with a frame per entry of `cloud.frames` (named by paper t), play/pause and a slider.

    Gradio's gr.Plot draws data and layout but drops `frames`; the page adds them with Plotly.addFrames once the
    plot whose layout.meta.cloud equals `token` is drawn (see ui/cloud.py).
    """
    half = float(cloud.edges[-1])
    styles = _styles(cloud)
    frames = [
        dict(
            name=frame_name(cloud, j),
            data=[{"type": "scatter"} | values for values in _frame_data(cloud, j)],
            traces=list(range(len(TRACES))),
            layout=_frame_layout(cloud, j),
        )
        for j in range(len(cloud.frames))
    ]
    data = [{"type": "scatter"} | style | values for style, values in zip(styles, _frame_data(cloud, 0), strict=True)]
    layout = dict(
        **_frame_layout(cloud, 0),
        font=FONT,
        height=720,
        margin=dict(l=50, r=20, t=50, b=110),
        xaxis=dict(range=[-half, half], title=dict(text="x₁"), zeroline=False, showgrid=False, constrain="domain"),
        yaxis=dict(range=[-half, half], title=dict(text="x₂"), zeroline=False, showgrid=False, scaleanchor="x"),
        legend=dict(x=1.02, xanchor="left", y=1, yanchor="top"),
        plot_bgcolor="white",
        meta=dict(cloud=token, frames=len(frames)),
        **_controls(cloud),
    )
    return AnimatedFigure(data, layout, frames)
