"""The twin models of the Memorization view: pairs of small denoisers trained on disjoint halves of one data set.

    pretrained/twins/<data>-n<N>-<half>/   e.g. pretrained/twins/moons-n0064-a
        config.json, diffusion_pytorch_model.safetensors, scheduler_config.json, training.json, README.md

Twin a is trained on `explorer.data.twin_half(data, N, "a")`, twin b on the disjoint half b, with the same seed (the
same initial weights, minibatches, noise and timesteps: only the data differ). `twin_samples` draws both twins'
samples, and those of the exact denoiser of each half, from the same noise with deterministic DDIM (η = 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer.data import Dataset, Half, twin_half
from explorer.diffusion.denoiser import Denoiser
from explorer.diffusion.oracle import OptimalDenoiser
from explorer.diffusion.sampler import sample
from explorer.models.cache import ModelCache
from explorer.models.checkpoint import load_folder
from explorer.models.errors import CheckpointError, CheckpointProblem
from explorer.models.refs import PRETRAINED_DIR

TWINS_DIR = PRETRAINED_DIR / "twins"
TWIN_STEPS = 100  # DDIM steps of every twin sample (leading spacing: the last step is at t = 1, 0-based 0)
TWIN_SPACING = "leading"
_FOLDER = re.compile(r"(?P<data>[a-z]+)-n(?P<n>\d+)-(?P<half>[ab])")
_CACHE: ModelCache[Denoiser] = ModelCache(8)


def twin_folder(dataset: str | Dataset, n: int, half: str | Half, root: Path | None = None) -> Path:
    """Where twin `half` of size n of `dataset` is stored."""
    dataset, half = Dataset.parse(dataset), Half.parse(half)
    return (TWINS_DIR if root is None else root) / f"{dataset.value}-n{int(n):04d}-{half.value}"


def twin_sizes(dataset: str | Dataset, root: Path | None = None) -> tuple[int, ...]:
    """The training-set sizes N (ascending) for which both twins of `dataset` are shipped."""
    dataset = Dataset.parse(dataset)
    folder = TWINS_DIR if root is None else root
    found: dict[int, set[str]] = {}
    for path in folder.iterdir() if folder.is_dir() else ():
        match = _FOLDER.fullmatch(path.name)
        if match and match["data"] == dataset.value and (path / "diffusion_pytorch_model.safetensors").is_file():
            found.setdefault(int(match["n"]), set()).add(match["half"])
    return tuple(sorted(n for n, halves in found.items() if halves == {"a", "b"}))


def load_twin(dataset: str | Dataset, n: int, half: str | Half, root: Path | None = None) -> Denoiser:
    """Twin `half` of size n of `dataset`, on the CPU in float32 (shared: loaded once per process)."""
    folder = twin_folder(dataset, n, half, root)
    if not folder.is_dir():
        sizes = ", ".join(map(str, twin_sizes(dataset, root))) or "none"
        raise CheckpointError(
            CheckpointProblem.NOT_FOUND, f"no twin model of {Dataset.parse(dataset).value} at N = {n}; shipped: {sizes}"
        )
    key = (str(folder.resolve()),)
    cpu = torch.device("cpu")
    return _CACHE.get_or_load(key, lambda: load_folder(folder, name=folder.name, device=cpu, dtype=torch.float32))


@dataclass(frozen=True)
class TwinSamples:
    """Samples of both twins and of the exact denoiser of each half, row s of each from the same x_T [S, *shape]."""

    dataset: Dataset
    train_size: int
    noise: torch.Tensor  # x_T
    model_a: torch.Tensor
    model_b: torch.Tensor
    exact_a: torch.Tensor  # DDIM with E[x₀ | x_t] of train_a in place of a network
    exact_b: torch.Tensor
    train_a: torch.Tensor  # [N, *shape]
    train_b: torch.Tensor


def _final(denoiser: Denoiser, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x_T and the DDIM (η = 0) sample of `count` points from noise `seed`: ([S, *shape], [S, *shape]) float64."""
    run = sample(
        denoiser,
        sampler="ddim",
        eta=0.0,
        num_inference_steps=TWIN_STEPS,
        spacing=TWIN_SPACING,
        batch_size=count,
        seed=seed,
    )
    return run.steps[0].x_t.double(), run.steps[-1].x_prev.double()


def twin_samples(
    dataset: str | Dataset, n: int, *, count: int, seed: int, exact: bool = True, root: Path | None = None
) -> TwinSamples:
    """`count` samples of each twin of size n and (when `exact`) of each half's exact denoiser, all from the x_T of
    `seed`. Without `exact` the exact samples are empty tensors [0, *shape]."""
    dataset = Dataset.parse(dataset)
    train_a, train_b = twin_half(dataset, n, Half.A), twin_half(dataset, n, Half.B)
    twin_a, twin_b = (load_twin(dataset, n, half, root) for half in Half)
    noise, model_a = _final(twin_a, count, seed)
    _, model_b = _final(twin_b, count, seed)
    empty = torch.empty((0, *dataset.sample_shape), dtype=torch.float64)
    exact_a = exact_b = empty
    if exact:
        schedule = twin_a.schedule
        _, exact_a = _final(OptimalDenoiser(train_a, schedule, name="exact a"), count, seed)
        _, exact_b = _final(OptimalDenoiser(train_b, schedule, name="exact b"), count, seed)
    return TwinSamples(dataset, n, noise, model_a, model_b, exact_a, exact_b, train_a.double(), train_b.double())
