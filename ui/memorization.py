"""Memorization view: twin models trained on disjoint halves of N examples, sampled from the same noise, against N.

It fills when its tab opens: the twins' samples at the chosen N with each sample's nearest training example (its own
half and the other), the distance between the twins' samples, the exact denoiser of each half, and the curves
against N that `scripts/memorization.py` measured (`docs/data/memorization.json`).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from explorer.data import Dataset
from explorer.figures.memorization import curves_figure, twins_figure
from explorer.memorization import COPY_FRACTION, SLOPE_SIZES, compare_twins, distance_slopes, power_text
from explorer.models.twins import twin_samples, twin_sizes
from explorer.validation import Mode, check_choice, check_int, check_seed
from ui.api_names import named
from ui.common import MODEL_WORK, VIEW_WORK, slider_events, user_errors

TAB_ID = "memorization"
CURVES_PATH = Path(__file__).resolve().parents[1] / "docs" / "data" / "memorization.json"
SAMPLES = {"moons": 200, "ring": 200, "digits": 64}  # samples per twin drawn in the view (digits: a UNet each)
LOG2_RANGE = (2, 12)  # the N slider reads log₂ N: N = 4 … 4096 (digits: its top is the largest half, 2,000)
NEAREST_OCTAVES = 1.5  # the slider's N picks the shipped size within this many octaves of 2^k (the nearest)
OPEN_OUTPUTS = 4  # twins figure, this N's numbers, curves figure, what the curves show
INTRO = """### Memorization: do two networks trained on different data make the same sample?
Each pair of **twins** is two small ε-prediction networks (an MLP for 2-D points, the bundled digits UNet for
digits) trained with `tools/train.py` on **disjoint** halves of N examples each, from the **same initial weights**
and the same minibatch noise and timesteps (only the data differ; Kadkhodaie et al., ICLR 2024). Both are sampled
from the **same noise** with deterministic DDIM (η = 0). With few examples each twin copies its own training set, so
the twins disagree; with many, they generalise, and the question is whether they then make the *same* new sample.
Beside them, the exact denoiser E[x₀ | x<sub>t</sub>] of each half, which copies at every N (Carlini et al. 2023
measured copying in real image models)."""


class TwinData(Mode, field="data"):
    """Data sets with shipped twins."""

    MOONS = Dataset.MOONS.value
    RING = Dataset.RING.value
    DIGITS = Dataset.DIGITS.value


def _size(data: TwinData, log2_n: float) -> int:
    """The shipped N of `data` nearest to 2^k on a log scale, k the slider's log₂ N (within NEAREST_OCTAVES; the
    smaller on a tie): the powers 4 … 4096 themselves for 2-D points, and 2,000 at the top for digits."""
    exponent = check_int("log₂ N", log2_n, *LOG2_RANGE)
    sizes = twin_sizes(data.value)
    octaves = {n: abs(math.log2(n) - exponent) for n in sizes}
    near = [n for n in sizes if octaves[n] <= NEAREST_OCTAVES]
    if not near:
        shipped = ", ".join(f"{s} (log₂ N = {math.log2(s):.3g})" for s in sizes) or "none"
        raise ValueError(f"no twins of {data.value} near N = {2**exponent}: the shipped sizes are {shipped}")
    return min(near, key=lambda n: (octaves[n], n))


@functools.lru_cache(maxsize=16)
def _twins(data: TwinData, n: int, seed: int):
    drawn = twin_samples(data.value, n, count=SAMPLES[data.value], seed=seed)
    comparison = compare_twins(drawn.model_a, drawn.model_b, drawn.train_a, drawn.train_b)
    exact = compare_twins(drawn.exact_a, drawn.exact_b, drawn.train_a, drawn.train_b)
    return drawn, comparison, exact


def numbers_markdown(comparison, exact, n: int) -> str:
    """This N's measured numbers on the view's samples, as a Markdown table."""
    median = lambda x: f"{float(np.median(x)):.4f}"  # noqa: E731
    return "\n".join(
        [
            f"**N = {n} per twin, {len(comparison.twin)} samples each** (a copy: within {COPY_FRACTION:g} × the "
            f"training set's median spacing, {comparison.spacing_a:.4f} for a, {comparison.spacing_b:.4f} for b)",
            "",
            "| | twins (networks) | exact denoisers |",
            "|---|---|---|",
            f"| samples of a that copy a | {comparison.copies_a.mean():.0%} | {exact.copies_a.mean():.0%} |",
            f"| samples of b that copy b | {comparison.copies_b.mean():.0%} | {exact.copies_b.mean():.0%} |",
            f"| twins agree (‖a − b‖ below both own-nearest distances) | {comparison.agreement:.0%} "
            f"| {exact.agreement:.0%} |",
            f"| median ‖a − b‖ | {median(comparison.twin)} | {median(exact.twin)} |",
            f"| median distance of a to its nearest example in a / in b | {median(comparison.own_a)} / "
            f"{median(comparison.other_a)} | {median(exact.own_a)} / {median(exact.other_a)} |",
            f"| median distance of b to its nearest example in b / in a | {median(comparison.own_b)} / "
            f"{median(comparison.other_b)} | {median(exact.own_b)} / {median(exact.other_b)} |",
        ]
    )


@user_errors
def twins_view(data: str, log2_n: float, seed: float):
    """The twins at one N: figure and Markdown numbers."""
    chosen = check_choice("data", data, TwinData)
    drawn, comparison, exact = _twins(chosen, _size(chosen, log2_n), check_seed(seed))
    return twins_figure(drawn, comparison), numbers_markdown(comparison, exact, drawn.train_size)


def read_curves(path: Path = CURVES_PATH) -> dict:
    """The measured curves (`scripts/memorization.py`'s JSON); a clear error when they were never measured."""
    if not path.is_file():
        raise ValueError("the curves against N were not measured yet: run scripts/memorization.py")
    return json.loads(path.read_text())


def curves_markdown(record: dict, data: TwinData) -> str:
    """What the measured curves show, in words, every number read from the measured record."""
    curves = record["datasets"][data.value]
    sizes, agree = curves["sizes"], curves["agreement"]
    ratio = np.asarray(curves["median_own_distance"]) / np.asarray(curves["median_other_distance"])
    exact, checks = curves["exact_copy_fraction"], curves["checks"]
    best = int(np.argmax(agree))
    first, last = f"N = {sizes[0]}", f"N = {sizes[-1]}"
    lines = [
        f"**What the curves show** ({record['samples']} samples per twin, {record['sampler']}, measured by "
        f"`{record['command']}`).",
        "",
        f"- **Copying falls with N.** At {first}, {copy_text(curves, 0)}; at {last}, {copy_text(curves, -1)}, "
        f"against {curves['chance_copy_fraction'][-1]:.0%} for fresh draws from the true distribution. A sample's "
        f"nearest example in its own half is {ratio[0]:.2f} × as far as its nearest in the other half at {first} "
        f"and {ratio[-1]:.2f} × at {last} (1 would be no preference for its own data).",
        f"- **The exact denoiser of each half** copies {exact[0]:.0%} of its samples at {first} and "
        f"{exact[-1]:.0%} at {last}: " + _exact_text(curves, last),
        f"- **The twins agree** (closer to each other than either is to its own nearest training example) on "
        f"{agree[0]:.0%} of the noises at {first} and {agree[-1]:.0%} at {last}"
        + (f", at most {agree[best]:.0%} (N = {sizes[best]})." if best != len(sizes) - 1 else "."),
        "",
        f"The issue's two checks, on these measured curves: each twin copies ≥ {record['copy_target']:.0%} at the "
        f"smallest N: **{'yes' if checks['copies_at_smallest_n'] else 'no'}**; the twins agree on most samples "
        f"(> {record['agree_target']:.0%}) at the largest N: **{'yes' if checks['agree_at_largest_n'] else 'no'}**.",
    ]
    slopes = distance_slopes(curves)
    if not checks["agree_at_largest_n"] and data is not TwinData.DIGITS and slopes:
        largest = ", ".join(str(n) for n in sizes[-SLOPE_SIZES:])
        lines += [
            "",
            "Why the twins rarely agree in 2-D even where they no longer copy: over N = "
            f"{largest}, a sample's nearest own training example comes closer as N^{_signed(slopes, 'own')} (N "
            "points in the plane are about N^−0.5 apart), while the twins' samples come together only as "
            f"N^{_signed(slopes, 'twin')} (two density estimates from N points each in the plane differ by about "
            "N^−1/3 at best). The bar falls faster than the twins converge, so more data would not get them "
            f"there. At {last} the twins' samples are a median {curves['median_twin_distance'][-1]:.4f} apart, a "
            f"sample's nearest own example a median {curves['median_own_distance'][-1]:.4f} away (training-set "
            f"spacing {curves['median_spacing'][-1]:.4f}). In high dimension (images, where Kadkhodaie et al. saw "
            "the twins agree) the nearest training example hardly comes closer as N grows." + _digits_contrast(record),
        ]
    return "\n".join(lines)


def _exact_text(curves: dict, last: str) -> str:
    """Why the exact denoiser copies as much as it does at the largest N, from the measured spacing and distance."""
    spacing, distance = curves["median_spacing"][-1], curves["exact_median_own_distance"][-1]
    step = "its deterministic last step, at t = 1 (noise level √(1 − ᾱ₁) = 0.01), "
    if distance < COPY_FRACTION * spacing:  # the median sample is a copy
        return (
            f"{step}sees examples {spacing:.4g} apart at {last}, far beyond that noise, so it lands on one of them "
            f"(median distance {distance:.4f})."
        )
    return (
        f"{step}averages the examples within about 0.01 of the sample (the training set's spacing at {last} is "
        f"{spacing:.4f}), so it lands between a few of its own examples: median distance {distance:.4f} to its own "
        "half."
    )


def _signed(slopes: dict[str, float], which: str) -> str:
    """An exponent of `distance_slopes` as the page writes it: which is 'own' or 'twin'."""
    return power_text(slopes[f"median_{which}_distance"])


def _digits_contrast(record: dict) -> str:
    """One sentence on the digits twins' measured distances and agreement (256 dimensions), when the record holds
    them."""
    digits = record["datasets"].get(TwinData.DIGITS.value)
    slopes = distance_slopes(digits) if digits else {}
    if not slopes:
        return ""
    return (
        f" The digits twins on this tab (16×16 = 256 dimensions): nearest own digit ∝ N^{_signed(slopes, 'own')}, "
        f"twins' distance ∝ N^{_signed(slopes, 'twin')}; they agree on {digits['agreement'][-1]:.0%} of the "
        f"noises at N = {digits['sizes'][-1]}."
    )


def copy_text(curves: dict, index: int) -> str:
    return (
        f"{curves['copy_fraction_a'][index]:.0%} of twin a's and {curves['copy_fraction_b'][index]:.0%} of twin b's "
        "samples copy an example of their own half"
    )


@user_errors
def curves_view(data: str):
    """The measured curves of `data` against N: figure and what they show."""
    chosen = check_choice("data", data, TwinData)
    record = read_curves()
    if chosen.value not in record["datasets"]:
        raise ValueError(f"the curves of {chosen.value} were not measured: run scripts/memorization.py --data {data}")
    return curves_figure(record["datasets"][chosen.value], chosen.value), curves_markdown(record, chosen)


@user_errors
def open_memorization(data: str, log2_n: float, seed: float):
    """Everything the tab shows, computed when it opens."""
    return (*twins_view(data, log2_n, seed), *curves_view(data))


@user_errors
def open_memorization_if_shown(tab: str, data: str, log2_n: float, seed: float):
    """`open_memorization` when the page opens on this tab (a link with tab=memorization), else nothing (inputs checked
    either way)."""
    check_choice("data", data, TwinData)
    check_int("log₂ N", log2_n, *LOG2_RANGE)
    check_seed(seed)
    if tab != TAB_ID:
        return (gr.skip(),) * OPEN_OUTPUTS
    return open_memorization(data, log2_n, seed)


@dataclass(frozen=True)
class MemorizationTab:
    """What app.py wires: the controls (URL parameters), and the handler that fills the tab when it opens."""

    controls: list  # components with an elem_id
    open_inputs: list  # data, log₂ N, seed
    open_outputs: list  # OPEN_OUTPUTS components


def build() -> MemorizationTab:
    gr.Markdown(INTRO, elem_classes="notes")  # behind the notes toggle in presentation mode (ui.stage)
    with gr.Row():
        data = gr.Radio([d.value for d in TwinData], value=TwinData.MOONS.value, label="data", elem_id="mem_data")
        size = gr.Slider(
            *LOG2_RANGE,
            value=LOG2_RANGE[0],
            step=2,
            label="log₂ N: training examples per twin, N = 4, 16, 64, 256, 1024, 4096 (digits: 2000 at the top)",
            elem_id="mem_n",
        )
        seed = gr.Slider(0, 1000, value=0, step=1, label="noise seed", elem_id="mem_seed")
    twins = gr.Plot(label="the twins at this N", elem_id="mem_twins")
    numbers = gr.Markdown(elem_id="mem_numbers")
    curves = gr.Plot(label="measured against N", elem_id="mem_curves")
    summary = gr.Markdown(elem_id="mem_summary")
    gr.on(
        triggers=[*slider_events(size, seed)],
        fn=named(twins_view, [data, size, seed]),
        inputs=[data, size, seed],
        outputs=[twins, numbers],
        api_name="memorization_twins",
        **VIEW_WORK,  # 2-D twins, cached per (data, N, seed): a drag sends many, and model work allows 2 per client
        trigger_mode="always_last",
        show_progress="hidden",
    )
    gr.on(
        triggers=[data.change],
        fn=named(open_memorization, [data, size, seed]),
        inputs=[data, size, seed],
        outputs=[twins, numbers, curves, summary],
        api_name="memorization",
        **MODEL_WORK,
        trigger_mode="always_last",
    )
    inputs = [data, size, seed]
    return MemorizationTab(inputs, inputs, [twins, numbers, curves, summary])
