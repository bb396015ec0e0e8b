"""Bound view: the variational bound in bits/dim, term by term over t, for every bundled model of one data set and
both fixed variance choices, with the exact denoiser of the training set beside them, on training and held-out data.
It computes when its tab opens (and on a change of data or seed); results are kept per (data, seed)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import gradio as gr
import torch

from explorer.data import Dataset, exact_training_set, held_out_data, spread_subset, training_data
from explorer.diffusion.bound import Bound, bounds
from explorer.diffusion.denoiser import Denoiser
from explorer.diffusion.posterior import VarianceType
from explorer.figures.bound import bound_figure, bound_markdown
from explorer.validation import check_choice, check_seed
from ui.api_names import named
from ui.common import MODEL_WORK, user_errors
from ui.models import EXACT_PREFIX, bundled_models, load_model

TAB_ID = "bound"  # the tab's id in app.py and in links (tab=bound)
OPEN_OUTPUTS = 2  # figure, table
TRAINING_SEED = 0  # every bundled recipe (pretrained/*/training.json) drew its 2-D pool with seed 0
# Examples per split: each costs T = 1,000 model calls per model. A 16×16 digit through the UNet is ≈ 0.3–0.7 ms on
# 2 CPU cores, so digits keep to 2 here (scripts/bound_table.py uses 32); a point through the MLP is ≈ 3 µs.
PER_SPLIT = {Dataset.DIGITS: 2, Dataset.MOONS: 64, Dataset.RING: 64}
VARIANCES = (VarianceType.FIXED_SMALL, VarianceType.FIXED_LARGE)
SPLITS = ("training data", "held-out data")
SUFFIX_ORDER = ("eps", "x0", "v")

INTRO = r"""### The variational bound, added up
The notes derive $\log p_\theta(x_0) \ge -(L_T + \sum_{t=2}^{T} L_{t-1} + L_0)$. Here every term is computed for
every t = 1..T (paper steps, no subsampling): $L_T = \mathrm{KL}(q(x_T|x_0)\,\|\,\mathcal N(0, I))$, each
$L_{t-1} = \mathrm{KL}(q(x_{t-1}|x_t,x_0)\,\|\,p_\theta(x_{t-1}|x_t))$ in closed form (one draw of
$x_t \sim q(x_t|x_0)$ per t), and the decoder $L_0 = -\log p_\theta(x_0|x_1)$. The curves add the terms from t = 1
up, in **bits per dimension** (nats ÷ (D ln 2)); their right end plus $L_T$ is the total in the legend.

- **Variance** of $p_\theta(x_{t-1}|x_t)$: solid σ² = β̃<sub>t</sub> (the lower choice, `fixed_small`), dashed
  σ² = β<sub>t</sub> (the upper, `fixed_large`), as Ho et al. compare them. The decoder at t = 1 uses
  σ² = β̃<sub>2</sub> with either (β̃<sub>1</sub> = 0; Ho et al.'s code does the same). A *learned* variance
  (Nichol & Dhariwal) is not shown: **none of the bundled models learns its variance** (`explorer.vlb` accepts
  `learned_range` for a model that does).
- **Digits**: $L_0$ is Ho et al.'s discretized Gaussian over the 256 levels of an 8-bit pixel on [−1, 1] (x₀ rounded
  to those levels), so the bound is a probability and bits/dim are those papers report.
- **Points**: the 2-D points are real numbers, not quantized, so $L_0 = -\log \mathcal N(x_0; \mu_\theta(x_1, 1),
  \sigma_1^2 I)$ is a density: the bound is on $-\log p_\theta(x_0)$ per unit area, can be negative, and depends on
  the data's units. Compare models with it, not with images.
- **Training vs held-out**: each model's own training examples (the 4,000 training digits; a 2-D network's pool of
  200,000 points; the exact denoiser's fixed 1,000 points) against examples no model saw (held-out digits, fresh
  points). The exact denoiser $E[x_0|x_t]$ of the training set is excellent on its training set and hopeless off
  it: memorization, in numbers."""


def models_of(dataset: Dataset) -> list[Denoiser]:
    """The bundled models of `dataset` (ε, x₀, v first, then any others such as moons-eps-minsnr5), then the exact
    denoiser of its training set."""
    prefix = f"{dataset.value}-"
    names = [name for name in bundled_models() if name.startswith(prefix)]

    def order(name: str) -> tuple[int, str]:
        suffix = name.removeprefix(prefix)
        return (SUFFIX_ORDER.index(suffix) if suffix in SUFFIX_ORDER else len(SUFFIX_ORDER), name)

    names = [*sorted(names, key=order), f"{EXACT_PREFIX}{dataset.value}"]
    return [load_model(name) for name in names]


def examples(model: Denoiser, dataset: Dataset, split: str, count: int) -> torch.Tensor:
    """`count` examples of `split` for `model`: its own training examples (strided over the set), or held-out ones."""
    if split == SPLITS[1]:
        return held_out_data(dataset, count)
    pool = exact_training_set(dataset) if model.name.startswith(EXACT_PREFIX) else training_data(dataset, TRAINING_SEED)
    return spread_subset(pool, count)


def measure(dataset: Dataset, seed: int, count: int | None = None) -> dict[str, list[Bound]]:
    """split label → the bounds of every model of `dataset` and both fixed variances, on `count` examples per split
    (default PER_SPLIT) with the x_t draws of `seed`."""
    count = PER_SPLIT[dataset] if count is None else count
    results: dict[str, list[Bound]] = {split: [] for split in SPLITS}
    for model in models_of(dataset):
        for split in SPLITS:
            results[split].extend(bounds(model, examples(model, dataset, split, count), seed=seed, variances=VARIANCES))
    return results


@functools.lru_cache(maxsize=6)
def _panel(dataset: Dataset, seed: int):
    results = measure(dataset, seed)
    count = PER_SPLIT[dataset]
    text = (
        f"Totals L<sub>T</sub> + Σ L<sub>t−1</sub> + L₀ in bits/dim, mean ± standard error over {count} examples per "
        f"split (x<sub>t</sub> draws of seed {seed}; `python scripts/bound_table.py` measures 32 digits per split).\n\n"
        + bound_markdown(results)
    )
    references = {f"{EXACT_PREFIX}{dataset.value}"}
    return bound_figure(results, references), text


@user_errors
def show_bound(data: str, seed: float):
    """The bound panel of `data`'s models: the cumulative figure and the table of totals."""
    return _panel(check_choice("data", data, Dataset), check_seed(seed))


@user_errors
def open_bound_if_shown(tab: str, data: str, seed: float):
    """`show_bound` when the page opens on this tab (a link with tab=bound), else nothing (its inputs are checked
    either way)."""
    check_choice("data", data, Dataset)
    check_seed(seed)
    if tab != TAB_ID:
        return (gr.skip(),) * OPEN_OUTPUTS
    return show_bound(data, seed)


@dataclass(frozen=True)
class BoundTab:
    """What app.py wires: the controls (URL parameters), and the handler inputs and outputs of opening the tab."""

    controls: list  # components with an elem_id
    open_inputs: list  # data, seed
    open_outputs: list  # figure, table


def build() -> BoundTab:
    gr.Markdown(
        INTRO,
        elem_classes="notes",  # behind the notes toggle in presentation mode (ui.stage)
        latex_delimiters=[
            {"left": "$$", "right": "$$", "display": True},
            {"left": "$", "right": "$", "display": False},
        ],
    )
    with gr.Row():
        data = gr.Radio([d.value for d in Dataset], value=Dataset.DIGITS.value, label="data", elem_id="bound_data")
        seed = gr.Slider(0, 1000, value=0, step=1, label="seed (x_t draws)", elem_id="bound_seed")
        button = gr.Button("Compute the bound", variant="primary", elem_id="bound_compute")
    figure = gr.Plot(label="cumulative bound over t", elem_id="bound_plot")
    table = gr.Markdown(elem_id="bound_table")
    gr.on(
        triggers=[button.click, data.change],
        fn=named(show_bound, [data, seed]),
        inputs=[data, seed],
        outputs=[figure, table],
        api_name="bound",
        **MODEL_WORK,
        trigger_mode="always_last",
    )
    return BoundTab([data, seed], [data, seed], [figure, table])
