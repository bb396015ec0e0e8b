"""The animated cloud of a 2-D run (moons, ring): every point from noise to data over the exact densities.

"Animate the cloud" reads this session's stored run (no model call) and sends one Plotly figure with its frames.
Gradio's gr.Plot draws data and layout but drops `frames`, so a browser-side step adds them to the drawn plot with
Plotly.addFrames (Gradio's bundled plotly.js is `window.Plotly`); Plotly's own play button and slider then animate
it in the browser without a server call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import gradio as gr
import numpy as np
import torch

from explorer.data import Dataset, exact_training_set
from explorer.diffusion.flow_paths import FlowPaths, flow_paths, to_flow_coordinates
from explorer.diffusion.parameterization import Prediction
from explorer.figures.cloud import (
    GRID_CELLS,
    TRAIL_FRAMES,
    AnimatedFigure,
    Cloud,
    cloud_figure,
    reverse_name,
    run_cloud,
)
from explorer.figures.flow_paths import RunPaths, paths_figure, paths_sentence
from explorer.validation import check_int
from ui.api_names import named
from ui.common import MODEL_WORK, user_errors
from ui.models import dataset_of
from ui.state import stored_run

INTRO = """### The cloud: every point of the batch from noise to data, over the exact densities (2-D models)
After a run of a 2-D model (moons-*, ring-*, exact-moons, exact-ring), **Animate the cloud** draws the whole run
as one animation: press its ▶ Play or drag its slider (both run in the browser). Nothing is sampled again. After a
flow run (moons-flow, ring-flow, exact-*-flow) a second figure sets its straight training paths beside the exact
curved paths from the same noise."""
NOT_2D = (
    "The cloud is for 2-D models (moons-*, ring-*, exact-moons, exact-ring): this session's run is of {model}, "
    "whose training set is not a known 2-D point set. Run a 2-D model first."
)

# Wait until gr.Plot has drawn the figure whose layout.meta.cloud is this one's, then give it the frames.
ADD_FRAMES_JS = """async (value) => {
  const text = value && typeof value === "object" ? value.plot : value;
  if (!text || !window.Plotly) { return; }
  const figure = typeof text === "string" ? JSON.parse(text) : text;
  const token = figure.layout && figure.layout.meta && figure.layout.meta.cloud;
  if (!token || !figure.frames) { return; }
  const drawn = () => {
    const plot = document.querySelector("#cloud .js-plotly-plot");
    const meta = plot && plot._fullLayout && plot.layout && plot.layout.meta;
    return meta && meta.cloud === token ? plot : null;
  };
  let plot = drawn();
  for (let tries = 0; !plot && tries < 200; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    plot = drawn();
  }
  if (!plot) { return; }
  await window.Plotly.deleteFrames(plot);
  await window.Plotly.addFrames(plot, figure.frames);
  plot.dataset.frames = String(figure.frames.length);
}"""


def caption(cloud: Cloud, dataset: Dataset) -> str:
    """What the figure draws, in Markdown, with this run's numbers."""
    shown, batch = len(cloud.shown), cloud.batch_size
    steps_drawn = sum(frame.marginal is not None for frame in cloud.frames)  # every frame but the final samples
    subsample = "" if shown == batch else f" (every {batch // shown}th of the {batch}: {shown} drawn)"
    k = cloud.highlighted
    return (
        f"**What is drawn.** Each frame is one step of the run ({steps_drawn} of its {cloud.num_steps} steps, evenly "
        f"spaced, then the final samples x₀): the points x<sub>t</sub> of the batch{subsample} in orange, with faint "
        f"trails of the last {TRAIL_FRAMES} frames for {len(cloud.trails)} of them. **Blue, beneath:** the density "
        f"of the noised training set, q(x<sub>t</sub>) = (1/N) Σ<sub>n</sub> N(x<sub>t</sub>; √ᾱ<sub>t</sub> "
        f"x<sub>n</sub>, (1 − ᾱ<sub>t</sub>) I), for the fixed {len(cloud.data):,} points of {dataset.value} "
        f"(grey in the last frame), averaged over each cell of a {GRID_CELLS}×{GRID_CELLS} grid. It is exact for "
        "that finite training set: the distribution the exact denoiser reverses, not a fit to the model's samples. "
        f"**Red:** point {k} at x<sub>t</sub> (ring), the contours of the reverse drawn, {reverse_name(cloud)}, "
        "for its jump to x<sub>s</sub>, s the run's next noise level (t − 1 when it visits every step), mixed over "
        "the training set with the exact weights w<sub>n</sub>(x<sub>t</sub>) = p(x₀ = x<sub>n</sub> | "
        f"x<sub>t</sub>), and its mean (+). {cloud.reverse.note} **Black ×:** where the run actually sent that "
        "point, its x<sub>s</sub>. Where the reverse is a set of point masses (the last step lands on training "
        "points) only its mean is drawn; a corrector call (Heun's 2nd-order call, PNDM's second) lands on its own "
        "noise level, so it has no jump to draw."
    )


@user_errors
def animate(point: float, request: gr.Request = None) -> tuple[AnimatedFigure, str]:
    """The cloud of this session's run with point `point` of the batch highlighted; refuses runs of image models."""
    run = stored_run(request)
    dataset = dataset_of(run.model)
    if dataset is None or dataset is Dataset.DIGITS or tuple(run.compact.samples.shape[1:]) != (2,):
        raise ValueError(NOT_2D.format(model=run.model))
    highlighted = check_int("highlighted point", point, 0, run.compact.samples.shape[0] - 1)
    cloud = run_cloud(run.compact, exact_training_set(dataset), highlighted)
    return cloud_figure(cloud, token=uuid.uuid4().hex), caption(cloud, dataset)


FLOW_PATHS = 12  # paths of a flow run drawn straight and exact (evenly strided over the batch)
FLOW_INTRO = """**A flow run: straight training paths, curved sampling paths.** A flow model learns from straight paths
x<sub>σ</sub> = (1 − σ) x₀ + σ ε, but it predicts their average over every pair (x₀, ε) through the same point, the
marginal velocity u* = E[ε − x₀ | x<sub>σ</sub>], and the paths of u* bend. Drawn on the flow path's own coordinates
(x<sub>σ</sub> = c(σ) x<sub>t</sub>), from this run's starting noise: the exact paths of u* of the training set
(integrated finely in float64), the straight path from the same start to where each ends, and the run's own
states."""


def run_flow_paths(compact, data: torch.Tensor, count: int = FLOW_PATHS) -> tuple[RunPaths, FlowPaths]:
    """(the run's states on the flow path, the exact `FlowPaths`) for `count` points of a 2-D run, from its first
    state at its first σ."""
    alphas = compact.settings.schedule.alphas_cumprod[compact.timesteps]  # [S]
    chosen = torch.from_numpy(np.unique(np.round(np.linspace(0, compact.samples.shape[0] - 1, count)).astype(int)))
    sigmas, states = to_flow_coordinates(compact.x_t[:, chosen], alphas)  # [S], [S, K, 2]
    final = compact.samples[chosen].double().numpy()[None]  # [1, K, 2]: σ = 0
    run = RunPaths(
        states=np.concatenate([states, final]).transpose(1, 0, 2),  # [K, S + 1, 2]
        steps=len(compact),
        stochastic=bool(compact.std.max() > 0),
    )
    return run, flow_paths(data, torch.from_numpy(states[0]), float(sigmas[0]))


@user_errors
def flow_view(request: gr.Request = None):
    """For a flow run of a 2-D model: (shown group, figure, sentence); for any other run the group stays hidden."""
    run = stored_run(request)
    dataset = dataset_of(run.model)
    two_d = dataset is not None and dataset is not Dataset.DIGITS and tuple(run.compact.samples.shape[1:]) == (2,)
    if not two_d or run.compact.prediction is not Prediction.FLOW:
        return gr.update(visible=False), None, ""
    data = exact_training_set(dataset)
    drawn, paths = run_flow_paths(run.compact, data)
    return (
        gr.update(visible=True),
        paths_figure(paths, data.double().numpy(), drawn),
        paths_sentence(paths, drawn, f"This run ({run.model})"),
    )


@dataclass(frozen=True)
class CloudTab:
    """The cloud's button, highlighted-point box, plot and caption."""

    button: gr.Button
    point: gr.Number
    plot: gr.Plot
    caption: gr.Markdown


def build() -> CloudTab:
    """Lay out the cloud (inside the Reverse sampling tab, below the run) and wire its one event."""
    gr.Markdown(INTRO, elem_classes="notes")  # behind the notes toggle in presentation mode (ui.stage)
    with gr.Row():
        button = gr.Button("Animate the cloud (2-D models: moons, ring)", elem_id="animate_cloud", scale=2)
        point = gr.Number(
            0, minimum=0, step=1, label="highlighted point (index in the batch)", elem_id="cloud_point", scale=1
        )
    plot = gr.Plot(label="the cloud", elem_id="cloud")
    text = gr.Markdown(elem_id="cloud_caption")
    with gr.Column(visible=False, elem_id="flow_paths_group") as flow_group:
        gr.Markdown(FLOW_INTRO)
        flow_plot = gr.Plot(label="straight training paths and the exact paths of a flow run", elem_id="flow_paths")
        flow_text = gr.Markdown(elem_id="flow_paths_text")
    animated = button.click(named(animate, [point]), [point], [plot, text], api_name="cloud", **MODEL_WORK)
    animated.then(None, [plot], None, js=ADD_FRAMES_JS, api_visibility="private", show_progress="hidden")
    animated.success(
        named(flow_view, []), None, [flow_group, flow_plot, flow_text], api_name="flow_paths", **MODEL_WORK
    )
    return CloudTab(button, point, plot, text)
