"""Measure the bundled models' quality and write it into their model cards.

    python -m tools.quality train-classifier            # the digits classifier the metrics use
    python -m tools.quality --model digits-eps [--samples 1000 --steps 1000 --seed 0] [--write-card]

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
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from explorer.data import Dataset, digits
from explorer.models.checkpoint import load_folder, sample_shape_of
from tools.classifier import CLASSIFIER_NAME, PRETRAINED_DIR, load_classifier, train_classifier
from tools.metrics import DigitsQuality, PointsQuality, digits_quality, points_quality
from tools.model_card import write_card

# Every trained bundled model: a folder of pretrained/ with the training.json that tools.train writes.
MODEL_NAMES = tuple(sorted(path.parent.name for path in PRETRAINED_DIR.glob("*/training.json")))
MAX_SAMPLES = 100_000


# --- loading and sampling ---------------------------------------------------------------------------


def load_model(folder: str | Path) -> nn.Module:
    """A bundled model's network from its folder, loaded as the app loads it (safetensors only, checked)."""
    folder = Path(folder)
    return load_folder(folder, name=folder.name, device=torch.device("cpu"), dtype=torch.float32).module


def sample_shape(model: nn.Module) -> tuple[int, ...]:
    """Shape of one sample (no batch axis) the model works on."""
    return sample_shape_of(dict(model.config))


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
    import diffusers

    model = load_model(folder)
    flow = sampler_class(folder) == FLOW_SCHEDULER
    scheduler = getattr(diffusers, sampler_class(folder)).from_pretrained(folder)
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
        scheduler.set_timesteps(steps)  # a fresh loop per chunk: the flow scheduler counts its steps (step_index)
        for i, t in enumerate(scheduler.timesteps):
            out = _flow_velocity(model, x, float(t), scheduler.config.num_train_timesteps) if flow else model(x, t)
            out = out.sample if hasattr(out, "sample") else out
            x = scheduler.step(out, t, x, generator=generator).prev_sample
            if log_every and (i + 1) % log_every == 0:
                print(f"  chunk {k}: sampling step {i + 1}/{len(scheduler.timesteps)}", flush=True)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, x.numpy())
        chunks.append(x)
    return torch.cat(chunks)  # [n, ...]


FLOW_SCHEDULER = "FlowMatchEulerDiscreteScheduler"


def sampler_class(folder: str | Path) -> str:
    """The diffusers scheduler a bundled model is scored with: DDPMScheduler, or a flow model's own flow scheduler."""
    kind = json.loads((Path(folder) / "scheduler_config.json").read_text()).get("_class_name")
    return FLOW_SCHEDULER if kind == FLOW_SCHEDULER else "DDPMScheduler"


def _flow_velocity(model: nn.Module, x_sigma: torch.Tensor, timestep: float, T: int) -> torch.Tensor:
    """A bundled flow model's velocity at diffusers' flow point x_σ (timestep = σ·T): the model takes the VP point of
    equal SNR, x_σ / c(σ), and the 0-based index of σ on its grid t/T (scored with `steps` = T, on the grid)."""
    index = round(timestep) - 1
    if abs(timestep - (index + 1)) > 1e-3 or not 0 <= index < T:
        raise ValueError(f"a flow model is scored on its own σ grid t/T; timestep {timestep:.3f} is not on it")
    sigma = (index + 1) / T
    c = math.sqrt((1 - sigma) ** 2 + sigma**2)  # x_VP = x_σ / c(σ) = x_σ (√ᾱ + √(1−ᾱ))
    out = model(x_sigma / c, torch.full((x_sigma.shape[0],), index))
    return out.sample if hasattr(out, "sample") else out


# --- scoring ----------------------------------------------------------------------------------------


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
        from tools.train import machine_description

        record = {
            "samples": args.samples,
            "steps": args.steps,
            "seed": args.seed,
            "sampler": "diffusers." + sampler_class(folder),
            "command": f"python -m tools.quality --model {args.model} --samples {args.samples} "
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
        "# digits-classifier\n\nThe metric classifier of `tools.quality`: a small CNN (`DigitClassifier`: "
        "conv 32, conv 64, fc 128 (the feature layer), fc 10) trained on the 4,000 training digits of "
        f"`explorer.data.digits('train')` for {args.epochs} epochs (AdamW, one-cycle lr 2e-3, ±1-pixel shifts), "
        f"seed {args.seed}. Accuracy on the 1,000 held-out digits: {accuracy:.4f}.\n\n"
        f"Reproduce: `python -m tools.quality train-classifier --epochs {args.epochs} --seed {args.seed}`\n"
    )
    print(f"saved {out}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # no advice about `accelerate` in the measurements' output
    parser = argparse.ArgumentParser(prog="python -m tools.quality", description=__doc__.splitlines()[0])
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
