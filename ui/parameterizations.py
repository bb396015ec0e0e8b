"""Parameterizations view: ε-, x₀- and v-prediction models on the same x_t, errors in every space, KL terms."""

from __future__ import annotations

import gradio as gr
import numpy as np
import torch

from explorer.comparison import SPACES, teacher_force
from explorer.images import image_grid, labelled_row, scatter_frame
from explorer.parameterization import Prediction, convert, v_from_x0_eps
from explorer.plots_sampling import comparison_figure
from explorer.posterior import q_sample
from explorer.validation import check_choice, check_int, check_seed
from ui.common import slider_events, user_errors
from ui.models import load_model
from ui.posterior import Source, choose_x0, point_set
from ui.sampling import STORE, _session

SUFFIXES = ("eps", "x0", "v")
EXAMPLES = 8
INTRO = """### ε, x₀ or v: the same information, different targets
Three bundled models were trained on the same data, each predicting a different quantity. Here they see the same
x<sub>t</sub> (same x₀, same noise) at each t, and each prediction is converted into all three spaces. Where each
model's error is small tells where its parameterization is easy to learn. t is the paper's step, 1..T."""


def models_for(data: Source) -> list:
    """The three bundled models of one data set, in the order ε, x₀, v."""
    names = [f"{data.dataset}-{suffix}" for suffix in SUFFIXES]
    try:
        return [load_model(name) for name in names]
    except ValueError as error:
        raise ValueError(f"the comparison needs the bundled models {', '.join(names)}: {error}") from None


def _show(batch: torch.Tensor, half_range: float):
    if batch.ndim == 2:
        return scatter_frame(batch, size=160, extent=3.5 * half_range)
    return image_grid(batch[:4] / half_range, columns=4, scale=4)


def side_by_side(denoisers: list, x0: torch.Tensor, t: int, seed: int):
    """Rows: the truth, then each model; columns: ε, x₀, v at paper step t (same x_t for all)."""
    schedule = denoisers[0].schedule
    i = t - 1
    abar = float(schedule.alphas_cumprod[i])
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    x_t = q_sample(schedule, x0, i, noise=eps)
    truth = {Prediction.EPSILON: eps, Prediction.SAMPLE: x0, Prediction.V_PREDICTION: v_from_x0_eps(x0, eps, abar)}
    rows = [("truth", truth)]
    for model in denoisers:
        with torch.no_grad():
            output = model(x_t.to(model.device, model.dtype), i).cpu().float()
        rows.append((model.name, {s: convert(output, model.prediction, s, x_t, abar) for s in SPACES}))
    ranges = {Prediction.EPSILON: 3.0, Prediction.SAMPLE: 1.0, Prediction.V_PREDICTION: 3.0}
    symbols = {Prediction.EPSILON: "ε (±3)", Prediction.SAMPLE: "x₀", Prediction.V_PREDICTION: "v (±3)"}
    pictures = [
        labelled_row([(f"{name}: {symbols[s]}", _show(values[s], ranges[s])) for s in SPACES]) for name, values in rows
    ]
    width, height = max(p.width for p in pictures), sum(p.height for p in pictures)
    from PIL import Image

    canvas = Image.new("RGB", (width, height), "white")
    top = 0
    for picture in pictures:
        canvas.paste(picture, (0, top))
        top += picture.height
    return canvas


def trajectory_views(request: gr.Request | None):
    """This session's run seen as x̂₀, ε̂ and v̂ over ten frames (first sample), or None without a run."""
    stored = STORE.get(_session(request))
    if stored is None:
        return None
    compact = stored.compact
    frames = np.unique(np.round(np.linspace(0, len(compact) - 1, 10)).astype(int))
    rows = []
    for name, title, scale in (("x0", "x̂₀", 1.0), ("eps", "ε̂ (±3)", 3.0), ("v", "v̂ (±3)", 3.0)):
        batch = torch.stack([compact.view(name, int(k))[0] for k in frames])  # [F, *shape]
        if batch.ndim == 2:
            rows.append((title, scatter_frame(compact.view(name, int(frames[-1])), size=160, extent=3.5 * scale)))
        else:
            rows.append((title, image_grid(batch / scale, columns=len(frames), scale=4)))
    return labelled_row(rows)


@user_errors
def compare(data: str, steps: float, seed: float, t: float, request: gr.Request = None):
    """Teacher-force the three bundled models of `data`: figure, side-by-side picture, summary, run views."""
    source = check_choice("data", data, Source)
    if source is Source.UPLOAD:
        raise ValueError("data must be one of digit, moons, ring")
    count = check_int("number of steps compared", steps, 2, 100)
    chosen_seed = check_seed(seed)
    denoisers = models_for(source)
    T = denoisers[0].schedule.num_train_timesteps
    chosen = check_int("t", t, 1, T)
    if source is Source.DIGIT:
        x0 = torch.cat([choose_x0(source, k, None) for k in range(EXAMPLES)])
    else:
        x0 = point_set(source)[:256]
    timesteps = np.unique(np.round(np.linspace(0, T - 1, count)).astype(int))
    result = teacher_force(denoisers, x0, timesteps, seed=chosen_seed)
    best = []
    for space in SPACES:
        middle = [np.nanmean(m.mse[space]) for m in result.models]
        best.append(f"{space.value}: **{result.models[int(np.nanargmin(middle))].name}**")
    summary = "Lowest mean error per space — " + " · ".join(best)
    picture = side_by_side(denoisers, x0, chosen, chosen_seed)
    return comparison_figure(result), picture, summary, trajectory_views(request)


def build() -> dict:
    gr.Markdown(INTRO)
    with gr.Row():
        data = gr.Radio([s.value for s in Source if s is not Source.UPLOAD], value="digit", label="data")
        steps = gr.Slider(2, 100, value=20, step=1, label="number of t compared")
        seed = gr.Slider(0, 1000, value=0, step=1, label="seed")
        t = gr.Slider(1, 1000, value=500, step=1, label="t for the pictures (paper step)", elem_id="cmp_t")
        button = gr.Button("Compare the three models", variant="primary", elem_id="compare")
    figure = gr.Plot(label="teacher-forced errors", elem_id="comparison_plot")
    summary = gr.Markdown(elem_id="comparison_summary")
    with gr.Row():
        picture = gr.Image(
            label="same x_t: truth and each model, in each space",
            format="png",
            type="pil",
            interactive=False,
            elem_id="comparison_picture",
        )
        run_views = gr.Image(
            label="your last run (Reverse sampling tab) as x̂₀, ε̂, v̂", format="png", type="pil", interactive=False
        )
    inputs, outputs = [data, steps, seed, t], [figure, picture, summary, run_views]
    gr.on(
        triggers=[button.click, data.change, *slider_events(t)],
        fn=compare,
        inputs=inputs,
        outputs=outputs,
        api_name="compare",
        concurrency_id="model",
        concurrency_limit=2,
        trigger_mode="always_last",
    )
    return {"inputs": inputs, "outputs": outputs}
