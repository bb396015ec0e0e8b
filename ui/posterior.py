"""Posterior view: q(x_{t−1} | x_t, x_0) for a real digit or a 2-D point, its parts, and the true reverse."""

from __future__ import annotations

import functools
from enum import StrEnum

import gradio as gr
import numpy as np
import torch
from PIL import Image

from explorer import Schedule, convert, q_posterior, q_sample
from explorer.diffusion.oracle import mixture_density, true_reverse
from explorer.diffusion.schedules import MAX_TIMESTEPS
from explorer.figures.images import image_grid, scatter_frame
from explorer.figures.posterior import (
    DensityPanel,
    gaussian_product,
    gaussian_product_figure,
    isotropic_density,
    message_figure,
    reverse_density_figure,
)
from explorer.validation import check_choice, check_int, check_seed
from ui.common import VIEW_WORK, example_digit, running_on_space, slider_events, user_errors
from ui.models import optional_model
from ui.schedules import parse_schedule

POINTS = 1000  # size of the finite 2-D data set the exact reverse is computed for
POSTERIOR_SAMPLES = 4
GRID = 90
MAX_STEP = 500
NOT_2D = "The exact reverse q(x<sub>t−1</sub> | x<sub>t</sub>) is drawn for 2-D data: pick moons or ring."
REVERSE_CAPTION = """For moons and ring the data set is 1,000 points, so the reverse step has an exact answer.
**Left**: the true q(x<sub>t−Δ</sub> | x<sub>t</sub>), a mixture of one Gaussian per data point, weighted by how
likely that point is to have produced x<sub>t</sub> (×). **Middle**: the single Gaussian we get when x₀ (★) is known.
**Right**: the Gaussian step of the bundled ε-model. Raise the step size Δ to see the mixture split into modes that
one Gaussian cannot follow; at Δ = 1 all three are nearly the same."""
INTRO = """### Why is q(x<sub>t−1</sub> | x<sub>t</sub>, x₀) easy while q(x<sub>t−1</sub> | x<sub>t</sub>) is not?
Given the clean x₀, the step back is a Gaussian we can write down: its mean μ̃ mixes x₀ and x<sub>t</sub>.
Without x₀, the step back averages over every x₀ that could have produced x<sub>t</sub>: a mixture, which a
network p<sub>θ</sub> learns to approximate. Uses **schedule 1 from the Schedules tab**; t is the paper's step, 1..T."""


class Source(StrEnum):
    """Where x₀ comes from."""

    DIGIT = "digit"
    MOONS = "moons"
    RING = "ring"
    UPLOAD = "uploaded image"

    @property
    def dataset(self) -> str:
        """The data set name that bundled model names start with."""
        return "digits" if self is Source.DIGIT else self.value

    @property
    def is_2d(self) -> bool:
        return self in (Source.MOONS, Source.RING)


@functools.cache
def point_set(source: Source) -> torch.Tensor:
    """The fixed finite 2-D data set [POINTS, 2] (seed 0) whose exact reverse the oracle computes."""
    from explorer import data

    return data.points(source.value, POINTS, 0)


def _upload_to_x0(picture: np.ndarray | None) -> torch.Tensor:
    if running_on_space():
        raise ValueError("uploaded images are accepted only when the app runs locally (python app.py)")
    if picture is None:
        raise ValueError("x₀ source is 'uploaded image' but no image was uploaded")
    grey = Image.fromarray(np.asarray(picture, dtype=np.uint8)).convert("L").resize((16, 16), Image.Resampling.BOX)
    pixels = torch.from_numpy(np.asarray(grey, dtype=np.float32))  # [16, 16]
    return (pixels / 127.5 - 1).reshape(1, 1, 16, 16)


def choose_x0(source: Source, index: int, upload: np.ndarray | None) -> torch.Tensor:
    """x₀ as a batch of one: [1, 1, 16, 16] for pictures, [1, 2] for points."""
    if source is Source.DIGIT:
        return example_digit(index)
    if source is Source.UPLOAD:
        return _upload_to_x0(upload)
    data = point_set(source)
    return data[index % len(data)].unsqueeze(0)


def _model_x0(source: Source, schedule: Schedule, t: int, x_t: torch.Tensor) -> torch.Tensor | None:
    """The bundled ε-model's x̂₀ at the model step whose ᾱ is nearest ᾱ_t of `schedule` (None: no model)."""
    model = optional_model(f"{source.dataset}-eps")
    if model is None:
        return None
    target = np.log(max(schedule.alphas_cumprod[t - 1], 1e-300))
    own = np.log(np.maximum(model.schedule.alphas_cumprod, 1e-300))
    step = int(np.argmin(np.abs(own - target)))
    with torch.no_grad():
        output = model(x_t.to(model.device, model.dtype), step).cpu().to(torch.float64)
    return convert(
        output, model.prediction, "sample", x_t.to(torch.float64), float(model.schedule.alphas_cumprod[step])
    )


def reverse_figure(source: Source, schedule: Schedule, t: int, step: int, x0: torch.Tensor, x_t: torch.Tensor):
    """Heatmaps of q(x_s|x_t) (exact mixture), q(x_s|x_t,x₀) and p_θ(x_s|x_t), s = t − Δ, for one 2-D point."""
    if t < 2:
        return message_figure("At t = 1 the step goes straight to x₀ (β̃₁ = 0): pick t ≥ 2.")
    step = min(step, t - 1)  # s = t − Δ ≥ 1 (paper); a jump to x₀ itself would be point masses
    i, s = t - 1, t - 1 - step  # 0-based
    data = point_set(source).to(torch.float64)
    x_t64, x0_64 = x_t.to(torch.float64), x0.to(torch.float64)
    mixture = true_reverse(data, schedule, x_t64, i, prev_timestep=s)
    jump = schedule.respace([s, i])  # its step 1 is the jump t → s, as in the oracle
    given_x0 = q_posterior(jump, x0_64, x_t64, 1)
    weights = mixture.weights[0]
    means = mixture.means[0][weights > 1e-4 * weights.max()]  # [K, 2]: the components that matter
    centres = torch.cat([means, given_x0.mean, x0_64, x_t64]).numpy()
    spread = 4 * max(float(np.sqrt(mixture.variance)), 0.02)
    low, high = centres.min(axis=0) - spread, centres.max(axis=0) + spread
    xs, ys = np.linspace(low[0], high[0], GRID), np.linspace(low[1], high[1], GRID)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)  # [G, 2], row-major in y
    panels = [
        DensityPanel(
            f"true reverse q(x<sub>{t - step}</sub> | x<sub>{t}</sub>): a mixture",
            mixture_density(mixture, torch.from_numpy(grid))[0].reshape(GRID, GRID).numpy(),
        ),
        DensityPanel(
            f"q(x<sub>{t - step}</sub> | x<sub>{t}</sub>, x₀): one Gaussian",
            isotropic_density(grid, given_x0.mean[0].numpy(), mixture.variance).reshape(GRID, GRID),
        ),
    ]
    x0_hat = _model_x0(source, schedule, t, x_t)
    if x0_hat is not None:
        model_step = q_posterior(jump, x0_hat, x_t64, 1)
        density = isotropic_density(grid, model_step.mean[0].numpy(), mixture.variance)
        title = f"model p<sub>θ</sub>(x<sub>{t - step}</sub> | x<sub>{t}</sub>), {source.value}-eps"
        panels.append(DensityPanel(title, density.reshape(GRID, GRID)))
    return reverse_density_figure(xs, ys, panels, x_t=x_t64[0].numpy(), x0=x0_64[0].numpy(), data=data.numpy()[::2])


@user_errors
def update_posterior(
    source: str,
    index: float,
    upload: np.ndarray | None,
    family: str,
    T: float,
    beta_start: float,
    beta_end: float,
    offset: float,
    zero_snr: bool,
    t: float,
    seed: float,
    pixel: float,
    step: float,
):
    """The Posterior view for raw control values: picture, caption, numbers, 1-D product, 2-D reverse."""
    kind = check_choice("x₀ source", source, Source)
    schedule = parse_schedule(1, family, T, beta_start, beta_end, offset, zero_snr)
    chosen = min(check_int("t", t, 1, MAX_TIMESTEPS), schedule.num_train_timesteps)
    number = check_int("example", index, 0, 999)
    generator = torch.Generator().manual_seed(check_seed(seed))
    jump = check_int("step size Δ", step, 1, MAX_STEP)
    x0 = choose_x0(kind, number, upload)  # [1, *shape]
    which = check_int("pixel", pixel, 0, 255) % x0[0].numel()  # a 2-D point has coordinates 0 and 1
    i = chosen - 1
    x_t = q_sample(schedule, x0, i, generator=generator)
    parts = q_posterior(schedule, x0, x_t, i)
    noise = torch.randn((POSTERIOR_SAMPLES, *x0.shape[1:]), generator=generator)
    samples = parts.mean + parts.variance.sqrt() * noise  # [S, *shape]

    if kind.is_2d:
        data = point_set(kind)
        cloud = q_sample(schedule, data, i, generator=torch.Generator().manual_seed(int(seed)))
        picture = scatter_frame(cloud, reference=data.numpy(), extent=3.5)
        caption = f"The whole data set noised to t = {chosen} (blue) over the clean data (grey)."
        figure_2d = reverse_figure(kind, schedule, chosen, jump, x0, x_t)
    else:
        tiles = torch.cat([x0, x_t, parts.from_x0, parts.from_xt, parts.mean, samples])
        picture = image_grid(tiles, columns=len(tiles), scale=6)
        caption = (
            f"x₀ | x<sub>{chosen}</sub> | weight·x₀ | weight·x<sub>{chosen}</sub> | μ̃ = their sum | "
            f"{POSTERIOR_SAMPLES} samples of x<sub>{chosen - 1}</sub> ~ N(μ̃, β̃). All on the same [−1, 1] grey scale."
        )
        figure_2d = message_figure(NOT_2D)
    c0, ct = schedule.posterior_mean_coef_x0[i], schedule.posterior_mean_coef_xt[i]
    numbers = (
        f"**t = {chosen}:** μ̃ = {c0:.4g}·x₀ + {ct:.4g}·x<sub>t</sub>; β̃<sub>t</sub> = "
        f"{schedule.posterior_variance[i]:.4g} (std {np.sqrt(schedule.posterior_variance[i]):.3g}); "
        f"β<sub>t</sub> = {schedule.betas[i]:.4g}."
    )
    one = gaussian_product(schedule, chosen, float(x0.flatten()[which]), float(x_t.flatten()[which]))
    return picture, caption, numbers, gaussian_product_figure(one, chosen), figure_2d


def build(schedule_inputs: list) -> dict:
    """Lay out the view; `schedule_inputs` are schedule 1's controls from the Schedules view."""
    gr.Markdown(INTRO)
    choices = [s.value for s in Source if s is not Source.UPLOAD or not running_on_space()]
    with gr.Row():
        source = gr.Radio(choices, value=Source.DIGIT.value, label="x₀ from", elem_id="post_source")
        index = gr.Slider(0, 999, value=0, step=1, label="which example", elem_id="post_index")
        upload = gr.Image(
            label="your image (local only; made grey 16×16)",
            type="numpy",
            visible=not running_on_space(),
            height=120,
            format="png",
        )
    with gr.Row():
        t = gr.Slider(1, 1000, value=200, step=1, label="t (paper step, 1..T)", elem_id="post_t")
        seed = gr.Slider(0, 1000, value=0, step=1, label="seed")
        pixel = gr.Slider(0, 255, value=120, step=1, label="pixel for the 1-D view (2-D data: even = x, odd = y)")
        step = gr.Slider(1, MAX_STEP, value=1, step=1, label="step size Δ (2-D: from t to t − Δ)", elem_id="post_step")
    picture = gr.Image(label="x₀, x_t and the posterior", format="png", type="pil", interactive=False)
    caption = gr.Markdown()
    numbers = gr.Markdown()
    product = gr.Plot(label="product of Gaussians")
    reverse = gr.Plot(label="reverse densities (2-D data)", elem_id="reverse_plot")
    gr.Markdown(REVERSE_CAPTION)
    inputs = [source, index, upload, *schedule_inputs, t, seed, pixel, step]
    outputs = [picture, caption, numbers, product, reverse]
    gr.on(
        triggers=[*slider_events(index, t, seed, pixel, step), source.change, upload.change],
        fn=update_posterior,
        inputs=inputs,
        outputs=outputs,
        trigger_mode="always_last",
        **VIEW_WORK,
        api_name="posterior",
        show_progress="hidden",
    )
    return {"inputs": inputs, "outputs": outputs, "t": t, "seed": seed}
