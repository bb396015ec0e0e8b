"""Posterior view: q(x_{t−1} | x_t, x_0) for a real digit or a 2-D point, its parts, and the true reverse."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch

from explorer.data import X0Source, choose_x0, point_set
from explorer.diffusion.denoiser import x0_at_noise_level
from explorer.diffusion.indexing import paper_t, previous_t, timestep_of
from explorer.diffusion.oracle import reverse_densities
from explorer.diffusion.posterior import q_posterior, q_posterior_sample, q_sample
from explorer.diffusion.schedules import MAX_TIMESTEPS, Schedule
from explorer.figures.formulas import PixelValues, posterior_derivation
from explorer.figures.images import GRID_GAP, image_grid, scatter_frame
from explorer.figures.posterior import (
    DensityPanel,
    gaussian_product,
    gaussian_product_figure,
    message_figure,
    reverse_density_figure,
)
from explorer.validation import check_choice, check_int, check_seed
from ui.common import VIEW_WORK, running_on_space, slider_events, user_errors
from ui.controls import ControlGroup, ScheduleControls, ScheduleValues, bind, event_inputs
from ui.models import optional_model

POSTERIOR_SAMPLES = 4
MAX_STEP = 500
MAX_PICTURE_BYTES = 5 * 2**20  # the launch configuration's upload cap, for pictures sent inline as data: URLs too
MAX_PICTURE_PIXELS = 2048 * 2048  # refused before decoding: a 13000² PNG of 164 KB would decode to 0.5 GB
HEADER_BASE64 = 87_384  # base64 characters of the first 64 KiB: enough for any image header
MARK = (230, 0, 0)  # the pixel of the 1-D view and the derivation, outlined on every tile
PICTURE_SCALE = 6
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


@dataclass(frozen=True)
class PosteriorValues:
    """The Posterior view's own controls."""

    source: str = X0Source.DIGIT.value
    index: float = 0
    upload: Any = None  # an RGB picture (numpy) or None
    t: float = 200
    seed: float = 0
    pixel: float = 120
    step: float = 1


def _upload(picture: np.ndarray | None) -> np.ndarray | None:
    if running_on_space():
        raise ValueError("uploaded images are accepted only when the app runs locally (python app.py)")
    return picture


def check_picture(payload: Any) -> None:
    """Refuse, before anything decodes it, a picture (a FileData) over the byte cap or MAX_PICTURE_PIXELS."""
    url, path = getattr(payload, "url", None), getattr(payload, "path", None)
    inline = isinstance(url, str) and url.startswith("data:")
    if not inline and path is None:
        return
    encoded = url.partition(",")[2] if inline else ""
    size = len(encoded) * 3 // 4 if inline else Path(path).stat().st_size
    if size > MAX_PICTURE_BYTES:
        raise gr.Error(f"the picture must be at most {MAX_PICTURE_BYTES >> 20} MB", print_exception=False)
    try:
        head = encoded[:HEADER_BASE64]
        source = io.BytesIO(base64.b64decode(head + "=" * (-len(head) % 4))) if inline else path
        with PIL.Image.open(source) as picture:  # reads the header only
            width, height = picture.size
    except (OSError, ValueError, PIL.Image.DecompressionBombError):
        raise gr.Error(
            "the picture could not be read as an image (PNG, JPEG, WebP or GIF)", print_exception=False
        ) from None
    if width * height > MAX_PICTURE_PIXELS:
        pixels = f"the picture has {width}×{height} pixels; at most {MAX_PICTURE_PIXELS:,} are accepted"
        raise gr.Error(pixels, print_exception=False)


def bounded(image: gr.Image) -> gr.Image:
    """`image` with `check_picture` run before Gradio decodes a picture. Set on the instance: a `gr.Image` subclass
    would make Gradio write a .pyi stub beside this module on every import."""
    decode = image.preprocess

    def preprocess(payload: Any) -> Any:
        if payload is not None:
            check_picture(payload)
        return decode(payload)

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


@dataclass(frozen=True)
class ModelGuess:
    """A bundled ε-network's x̂₀ for the view's x_t: p_θ's mean is μ̃_t(x̂₀, x_t)."""

    name: str
    x0_hat: torch.Tensor  # float64 [1, *sample_shape]


def model_guess(source: X0Source, schedule: Schedule, t: int, x_t: torch.Tensor) -> ModelGuess | None:
    """The bundled `<data set>-eps` network's x̂₀ for x_t at paper step t of `schedule`, None when it is absent.
    The network runs at its own step whose ᾱ is nearest ᾱ_t (the same step when schedule 1 is its schedule)."""
    name = f"{source.dataset.value}-eps"
    model = optional_model(name)
    if model is None:
        return None
    return ModelGuess(name, x0_at_noise_level(model, x_t, float(schedule.alphas_cumprod[timestep_of(t)])))


def reverse_figure(source: X0Source, schedule: Schedule, t: int, jump: int, points: tuple, guess: ModelGuess | None):
    """Heatmaps of q(x_s|x_t) (exact mixture), q(x_s|x_t,x₀) and p_θ(x_s|x_t), s = t − Δ, for one 2-D point.

    points: (x0, x_t), each [1, 2]."""
    if t < 2:
        return message_figure("At t = 1 the step goes straight to x₀ (β̃₁ = 0): pick t ≥ 2.")
    x0, x_t = points
    s = t - min(jump, previous_t(t))  # paper step s ≥ 1: a jump to x₀ itself would be point masses
    data = point_set(source.dataset)
    model_x0 = None if guess is None else guess.x0_hat
    densities = reverse_densities(data, schedule, x0, x_t, timestep_of(t), timestep_of(s), model_x0=model_x0)
    panels = [
        DensityPanel(f"true reverse q(x<sub>{s}</sub> | x<sub>{t}</sub>): a mixture", densities.true),
        DensityPanel(f"q(x<sub>{s}</sub> | x<sub>{t}</sub>, x₀): one Gaussian", densities.given_x0),
    ]
    if densities.model is not None:
        title = f"model p<sub>θ</sub>(x<sub>{s}</sub> | x<sub>{t}</sub>), {guess.name}"
        panels.append(DensityPanel(title, densities.model))
    return reverse_density_figure(
        densities.xs, densities.ys, panels, x_t=x_t[0].numpy(), x0=x0[0].numpy(), data=data.numpy()[::2]
    )


def mark_pixel(picture: PIL.Image.Image, shape: tuple[int, ...], which: int, tiles: int) -> PIL.Image.Image:
    """The picture of `tiles` tiles in one row (each [C, H, W] = `shape`, upscaled PICTURE_SCALE×) with flat pixel
    `which` of every tile outlined in red."""
    _, row, column = np.unravel_index(which, shape)
    marked = picture.convert("RGB")
    draw, size = PIL.ImageDraw.Draw(marked), PICTURE_SCALE
    for tile in range(tiles):
        left, top = (tile * (shape[-1] + GRID_GAP) + int(column)) * size, int(row) * size
        draw.rectangle((left - 1, top - 1, left + size, top + size), outline=MARK, width=1)
    return marked


def pixel_label(source: X0Source, shape: tuple[int, ...], which: int) -> str:
    """How the derivation names the pixel of the 1-D view."""
    if source.is_2d:
        return f"coordinate {'xy'[which]} of the point x₀ (★ in the plot below)"
    _, row, column = np.unravel_index(which, shape)
    return f"pixel {which} (row {row}, column {column}), outlined in red on the picture"


@user_errors
def update_posterior(values: PosteriorValues, schedule_values: ScheduleValues):
    """The Posterior view: picture, caption, numbers, 1-D product, derivation, 2-D reverse."""
    source = check_choice("x₀ source", values.source, X0Source)
    schedule = schedule_values.parse(1)
    chosen = min(check_int("t", values.t, 1, MAX_TIMESTEPS), schedule.num_train_timesteps)
    number = check_int("example", values.index, 0, 999)
    generator = torch.Generator().manual_seed(check_seed(values.seed))
    jump = check_int("step size Δ", values.step, 1, MAX_STEP)
    pixel = check_int("pixel", values.pixel, 0, 255)
    picture_in = _upload(values.upload) if source is X0Source.UPLOAD else None
    x0 = choose_x0(source, number, picture_in)  # [1, *shape]
    shape = tuple(x0.shape[1:])
    which = pixel % x0[0].numel()  # a 2-D point has coordinates 0 and 1
    i = timestep_of(chosen)
    x_t = q_sample(schedule, x0, i, generator=generator)
    parts = q_posterior(schedule, x0, x_t, i)
    many = POSTERIOR_SAMPLES
    samples = q_posterior_sample(
        schedule, x0.expand(many, *x0.shape[1:]), x_t.expand(many, *x0.shape[1:]), i, generator=generator
    )
    guess = model_guess(source, schedule, chosen, x_t)

    if source.is_2d:
        data = point_set(source.dataset)
        cloud = q_sample(schedule, data, i, generator=torch.Generator().manual_seed(int(values.seed)))
        picture = scatter_frame(cloud, reference=data.numpy(), extent=3.5)
        caption = f"The whole data set noised to t = {chosen} (blue) over the clean data (grey)."
        figure_2d = reverse_figure(source, schedule, chosen, jump, (x0, x_t), guess)
    else:
        tiles = torch.cat([x0, x_t, parts.from_x0, parts.from_xt, parts.mean, samples])
        picture = image_grid(tiles, columns=len(tiles), scale=PICTURE_SCALE)
        picture = mark_pixel(picture, shape, which, len(tiles))
        caption = (
            f"x₀ | x<sub>{chosen}</sub> | weight·x₀ | weight·x<sub>{chosen}</sub> | μ̃ = their sum | "
            f"{many} samples of x<sub>{previous_t(chosen)}</sub> ~ N(μ̃, β̃). All on the same [−1, 1] grey scale; "
            "the red square is the pixel of the 1-D view and the derivation."
        )
        figure_2d = message_figure(NOT_2D)
    c0, ct = schedule.posterior_mean_coef_x0[i], schedule.posterior_mean_coef_xt[i]
    numbers = (
        f"**t = {paper_t(i)}:** μ̃ = {c0:.4g}·x₀ + {ct:.4g}·x<sub>t</sub>; β̃<sub>t</sub> = "
        f"{schedule.posterior_variance[i]:.4g} (std {np.sqrt(schedule.posterior_variance[i]):.3g}); "
        f"β<sub>t</sub> = {schedule.betas[i]:.4g}."
    )
    x0_pixel, x_t_pixel = float(x0.flatten()[which]), float(x_t.flatten()[which])
    one = gaussian_product(schedule, chosen, x0_pixel, x_t_pixel)
    marked = PixelValues(
        pixel_label(source, shape, which),
        x0_pixel,
        x_t_pixel,
        x0_hat=None if guess is None else float(guess.x0_hat.flatten()[which]),
        model=None if guess is None else guess.name,
    )
    derivation = posterior_derivation(schedule, chosen, marked)
    return picture, caption, numbers, gaussian_product_figure(one, chosen), derivation, figure_2d


class PosteriorControls(ControlGroup[PosteriorValues]):
    values = PosteriorValues

    def __init__(self, defaults: PosteriorValues = PosteriorValues()) -> None:
        hosted = running_on_space()  # a Space has no picture input at all: nothing to upload, nothing to decode
        choices = [s.value for s in X0Source if s is not X0Source.UPLOAD or not hosted]
        with gr.Row():
            source = gr.Radio(choices, value=defaults.source, label="x₀ from", elem_id="post_source")
            index = gr.Slider(0, 999, value=defaults.index, step=1, label="which example", elem_id="post_index")
            upload = None
            if not hosted:
                upload = bounded(
                    gr.Image(
                        label="your image (local only; made grey 16×16)",
                        type="numpy",
                        height=120,
                        format="png",
                        elem_id="post_upload",
                    )
                )
        with gr.Row():
            t = gr.Slider(1, 1000, value=defaults.t, step=1, label="t (paper step, 1..T)", elem_id="post_t")
            seed = gr.Slider(0, 1000, value=defaults.seed, step=1, label="seed", elem_id="post_seed")
            pixel = gr.Slider(
                0,
                255,
                value=defaults.pixel,
                step=1,
                label="pixel for the 1-D view (2-D data: even = x, odd = y)",
                elem_id="post_pixel",
            )
            step = gr.Slider(
                1,
                MAX_STEP,
                value=defaults.step,
                step=1,
                label="step size Δ (2-D: from t to t − Δ)",
                elem_id="post_step",
            )
        self.components = {"source": source, "index": index, "t": t, "seed": seed, "pixel": pixel, "step": step}
        if upload is not None:
            self.components["upload"] = upload


@dataclass(frozen=True)
class PosteriorTab:
    controls: PosteriorControls
    update: Any
    inputs: set
    outputs: list


def build(schedule: ScheduleControls) -> PosteriorTab:
    """Lay out the view; `schedule` is schedule 1's group from the Schedules view."""
    gr.Markdown(INTRO, elem_classes="notes")  # behind the notes toggle in presentation mode (ui.stage)
    controls = PosteriorControls()
    picture = gr.Image(
        label="x₀, x_t and the posterior", format="png", type="pil", interactive=False, elem_id="post_picture"
    )
    caption = gr.Markdown()
    numbers = gr.Markdown(elem_id="post_numbers")
    product = gr.Plot(label="product of Gaussians")
    with gr.Accordion("Derivation: Bayes' rule, completing the square, and Lₜ₋₁ for the marked pixel", open=False):
        derivation = gr.Markdown(elem_id="post_derivation")
    reverse = gr.Plot(label="reverse densities (2-D data)", elem_id="reverse_plot")
    gr.Markdown(REVERSE_CAPTION)
    update, inputs = bind(update_posterior, controls, schedule), event_inputs(controls, schedule)
    outputs = [picture, caption, numbers, product, derivation, reverse]
    own = controls.components
    gr.on(
        triggers=[
            *slider_events(own["index"], own["t"], own["seed"], own["pixel"], own["step"]),
            own["source"].change,
            *([own["upload"].change] if "upload" in own else []),
        ],
        fn=update,
        inputs=inputs,
        outputs=outputs,
        trigger_mode="always_last",
        **VIEW_WORK,
        api_name="posterior",
        show_progress="hidden",
    )
    return PosteriorTab(controls, update, inputs, outputs)
