"""A checkpoint folder on disk (diffusers layout, safetensors only) turned into a `Denoiser`.

Two layouts are read: flat (config.json, diffusion_pytorch_model.safetensors and scheduler_config.json at
the root, as google/ddpm-cifar10-32 and the bundled checkpoints) and pipeline (model_index.json with
`unet/` and `scheduler/` folders). The model class is dispatched on config.json's `_class_name` against
an allowlist; text-conditioned and latent models are refused, pickled weights are never opened.

Before diffusers sees a folder, every weight file it would read is checked on disk (`check_weights`): shard
indexes may name only plain `.safetensors` files in the same folder, every `.safetensors` file must start with a
safetensors header (a bounded read), and the weights must fit in `max_weight_bytes()`.

`ModuleDenoiser` takes diffusers' 0-based timestep (paper t = timestep + 1): an int for the whole batch
or a [B] tensor.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from explorer.diffusion.denoiser import Denoiser, DenoiserOutput
from explorer.diffusion.parameterization import Prediction
from explorer.diffusion.posterior import VarianceType
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.tensors import TimestepLike, as_timesteps


class CheckpointProblem(StrEnum):
    """Why a checkpoint could not be loaded."""

    INVALID_REF = "invalid_ref"
    NOT_FOUND = "not_found"
    GATED = "gated"
    UNAUTHORIZED = "unauthorized"
    REVISION_NOT_FOUND = "revision_not_found"
    OFFLINE = "offline"
    HUB_ERROR = "hub_error"
    MISSING_FILES = "missing_files"
    PICKLE_ONLY = "pickle_only"
    BROKEN_FILES = "broken_files"
    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported"
    LOCAL_REFUSED = "local_refused"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; `problem` says why, the message says it in one sentence."""

    def __init__(self, problem: CheckpointProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


MODEL_CLASSES = ("UNet2DModel", "PointDenoiserMLP")
SCHEDULER_CLASSES = frozenset(
    {
        "DDPMScheduler",
        "DDIMScheduler",
        "PNDMScheduler",
        "DDPMParallelScheduler",
        "DDIMParallelScheduler",
        "DPMSolverMultistepScheduler",
        "DPMSolverSinglestepScheduler",
        "DEISMultistepScheduler",
        "UniPCMultistepScheduler",
    }
)
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+, and torch.save's zip archive
WEIGHTS_STEM = "diffusion_pytorch_model"
# Per diffusers variant, in the order diffusers looks: shard indexes (its current name, its legacy name, and the name
# this app used to look for), then the single weights file. An index, when present, is what diffusers reads.
WEIGHT_ENTRIES: dict[str | None, tuple[str, ...]] = {
    None: ("diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.safetensors"),
    "fp16": (
        "diffusion_pytorch_model.safetensors.index.fp16.json",
        "diffusion_pytorch_model.safetensors.fp16.index.json",
        "diffusion_pytorch_model.fp16.safetensors.index.json",
        "diffusion_pytorch_model.fp16.safetensors",
    ),
}
MAX_WEIGHT_BYTES = 2 << 30  # the default; EXPLORER_MAX_WEIGHT_BYTES overrides it, read at each load
MAX_HEADER_BYTES = 16 << 20  # a safetensors header (tensor names, shapes, offsets) is kilobytes for these models
_SHARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[^\s'\"/]+/)*([^\s'\"/]*)")
TEXT_COMPONENTS = ("text_encoder", "tokenizer")
LATENT_COMPONENTS = ("vae", "vqvae", "movq")
MAX_CONFIG_BYTES = 1 << 20

TEXT_CONDITIONED = "it is text-conditioned, and the explorer runs unconditional pixel-space models only"
LATENT = "it is a latent diffusion model that needs a VAE decoder, and the explorer runs pixel-space models only"


def _unsupported(name: str, why: str) -> CheckpointError:
    return CheckpointError(CheckpointProblem.UNSUPPORTED, f"{name!r} cannot be explored: {why}.")


def _missing(name: str, what: str) -> CheckpointError:
    return CheckpointError(CheckpointProblem.MISSING_FILES, f"{name!r} is missing {what}, so it cannot be loaded.")


def _broken(name: str, what: str) -> CheckpointError:
    return CheckpointError(
        CheckpointProblem.BROKEN_FILES, f"{name!r} has files that cannot be read or do not fit together ({what})."
    )


def read_json(path: Path, name: str) -> dict[str, Any]:
    """A JSON object from `path`, or CheckpointError (missing file, too large, not a JSON object)."""
    if not path.is_file():
        raise _missing(name, path.name)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise _broken(name, f"{path.name} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _broken(name, f"{path.name} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise _broken(name, f"{path.name} is not a JSON object")
    return value


@dataclass(frozen=True)
class CheckpointLayout:
    """Where a checkpoint's parts are: the model folder (config.json + weights) and both configs."""

    model_folder: Path
    model_config: dict[str, Any]
    scheduler_config: dict[str, Any]

    @property
    def model_class(self) -> str:
        return str(self.model_config.get("_class_name"))


def read_layout(folder: Path, name: str) -> CheckpointLayout:
    """Read a checkpoint folder's JSON files (never its weights) and refuse what the explorer cannot run."""
    for component in TEXT_COMPONENTS:
        if (folder / component).is_dir():
            raise _unsupported(name, TEXT_CONDITIONED)
    for component in LATENT_COMPONENTS:
        if (folder / component).is_dir():
            raise _unsupported(name, LATENT)
    index_path = folder / "model_index.json"
    if (folder / "config.json").is_file():  # flat layout (old google/ddpm-* repos also carry a model_index.json)
        model_folder, scheduler_path = folder, folder / "scheduler_config.json"
        if index_path.is_file():
            _check_components(read_json(index_path, name), name)
    elif index_path.is_file():
        _check_components(read_json(index_path, name), name)
        model_folder, scheduler_path = folder / "unet", folder / "scheduler" / "scheduler_config.json"
    else:
        raise _missing(name, "config.json (or model_index.json with a unet/ folder)")
    layout = CheckpointLayout(
        model_folder, read_json(model_folder / "config.json", name), read_json(scheduler_path, name)
    )
    check_model_config(layout.model_config, name)
    check_scheduler_config(layout.scheduler_config, name)
    return layout


def _check_components(index: dict[str, Any], name: str) -> None:
    """Refuse pipelines with a text encoder or a VAE, and pipelines without a UNet."""
    present = {
        key
        for key, value in index.items()
        if not key.startswith("_") and isinstance(value, list) and len(value) == 2 and value[1] is not None
    }
    if present & set(TEXT_COMPONENTS):
        raise _unsupported(name, TEXT_CONDITIONED)
    if present & set(LATENT_COMPONENTS):
        raise _unsupported(name, LATENT)
    if "unet" not in present:
        raise _unsupported(name, f"its pipeline has no UNet (components: {', '.join(sorted(present)) or 'none'})")


def check_model_config(config: dict[str, Any], name: str) -> None:
    """Refuse model configs outside the allowlist, conditional models and continuous-time embeddings."""
    class_name = config.get("_class_name")
    if not isinstance(class_name, str):
        raise _broken(name, "config.json names no model class (_class_name)")
    if class_name == "UNet2DConditionModel" or config.get("cross_attention_dim") is not None:
        raise _unsupported(name, TEXT_CONDITIONED)
    if class_name in ("AutoencoderKL", "VQModel"):
        raise _unsupported(name, LATENT)
    if class_name not in MODEL_CLASSES:
        raise _unsupported(name, f"its model class {class_name!r} is not one of {', '.join(MODEL_CLASSES)}")
    if config.get("num_class_embeds") is not None or config.get("class_embed_type") is not None:
        raise _unsupported(name, "it is class-conditional, and the explorer runs unconditional models only")
    if config.get("time_embedding_type", "positional") != "positional":
        raise _unsupported(name, "it takes a continuous noise level (Fourier time embedding), not DDPM timesteps")


def check_scheduler_config(config: dict[str, Any], name: str) -> None:
    """Refuse schedulers without a discrete β schedule (score-SDE, Karras VE, flow matching)."""
    class_name = config.get("_class_name")
    if class_name is not None and class_name not in SCHEDULER_CLASSES:
        raise _unsupported(name, f"its scheduler {class_name} has no discrete-time DDPM β schedule")


def sample_shape_of(config: dict[str, Any]) -> tuple[int, ...]:
    """One sample's shape from a model config: (C, H, W) for a UNet2DModel, (D,) for a point model."""
    if config.get("_class_name") == "UNet2DModel":
        size = config.get("sample_size")
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        return (int(config.get("in_channels", 3)), int(height), int(width))
    return (int(config.get("sample_dim", 2)),)  # PointDenoiserMLP


def has_learned_variance(config: dict[str, Any]) -> bool:
    """True when the network outputs twice the input channels: prediction and variance values."""
    if config.get("_class_name") != "UNet2DModel":
        return False
    return int(config.get("out_channels", 3)) == 2 * int(config.get("in_channels", 3))


def max_weight_bytes() -> int:
    """The most weight bytes one load reads: EXPLORER_MAX_WEIGHT_BYTES when set, else MAX_WEIGHT_BYTES."""
    text = os.environ.get("EXPLORER_MAX_WEIGHT_BYTES", "").strip()
    if not text:
        return MAX_WEIGHT_BYTES
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise ValueError(f"EXPLORER_MAX_WEIGHT_BYTES must be a positive whole number of bytes; got {text[:40]!r}.")
    return int(text)


def _amount(size: int) -> str:
    """A byte count for people: '812 bytes', '3.5 MiB', '2.0 GiB'."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.1f} {unit}"
    return f"{size} bytes"


def check_weight_size(total: int, name: str) -> None:
    """Refuse weights larger than `max_weight_bytes()` in all (sizes from the Hub's listing or from the disk)."""
    limit = max_weight_bytes()
    if total > limit:
        raise CheckpointError(
            CheckpointProblem.TOO_LARGE,
            f"{name!r} has {_amount(total)} of weights, more than the {_amount(limit)} this server loads.",
        )


def _not_safetensors(name: str, files: list[str]) -> CheckpointError:
    shown = ", ".join(repr(file)[1:-1][:60] for file in files[:3])
    return CheckpointError(
        CheckpointProblem.PICKLE_ONLY,
        f"{name!r} has weights that are not safetensors files ({shown}); pickled weights can run arbitrary code when "
        "loaded, and the explorer loads safetensors weights only.",
    )


@dataclass(frozen=True)
class WeightPlan:
    """The weight files a diffusers load of one model folder reads: names inside that folder, and the variant."""

    variant: str | None
    index_files: tuple[str, ...]  # shard indexes diffusers may read (empty for one file)
    files: tuple[str, ...]  # the safetensors files it reads: the shards, or the single file


def index_shards(index: dict[str, Any], index_name: str, name: str) -> tuple[str, ...]:
    """The shard files an index's `weight_map` names: plain names in the same folder, each a .safetensors file."""
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise _broken(name, f"{index_name} has no weight_map from tensor names to file names")
    shards = sorted(set(weight_map.values()))
    outside = [shard for shard in shards if not _SHARD_NAME.fullmatch(shard) or ".." in shard]
    if outside:
        raise _broken(name, f"{index_name} names {outside[0]!r:.60}, which is not a plain file name in its folder")
    pickles = [shard for shard in shards if not shard.endswith(".safetensors")]
    if pickles:
        raise _not_safetensors(name, pickles)
    return tuple(shards)


def plan_weights(
    names: Collection[str], name: str, read_index: Callable[[str], dict[str, Any]]
) -> WeightPlan:
    """What a diffusers load of a folder holding `names` reads, found as diffusers finds it (an index first).

    `read_index(index_name)` returns an index's JSON (from the disk, or downloaded alone from the Hub). Refuses
    indexes that name pickles or files outside the folder, shards that are not there, and folders whose only
    weights are pickled; nothing is ever unpickled.
    """
    for variant, (*indexes, single) in WEIGHT_ENTRIES.items():
        present = tuple(index for index in indexes if index in names)
        if present:
            shards = sorted({shard for index in present for shard in index_shards(read_index(index), index, name)})
            missing = [shard for shard in shards if shard not in names]
            if missing:
                raise _missing(name, f"the weight file {missing[0]} that its index names")
            return WeightPlan(variant, present, tuple(shards))
        if single in names:
            return WeightPlan(variant, (), (single,))
    pickles = sorted(n for n in names if n.lower().endswith(PICKLE_SUFFIXES))
    if pickles:
        raise CheckpointError(
            CheckpointProblem.PICKLE_ONLY,
            f"{name!r} has only pickled weights ({', '.join(pickles[:3])}), which can run arbitrary code when "
            "loaded, and the explorer loads safetensors weights only.",
        )
    raise _missing(name, f"its weights ({WEIGHTS_STEM}.safetensors)")


def check_safetensors_file(path: Path, name: str) -> None:
    """Refuse a file that does not start as safetensors do: an 8-byte little-endian length, then a JSON object.

    A bounded read of the header only; tensors are never loaded, and a pickle is never opened as one.
    """
    if not path.is_file():  # also refuses FIFOs and devices, which a read could block on
        raise _missing(name, path.name)
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else 0
        if 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            try:
                header = json.loads(file.read(length))
            except ValueError:  # UnicodeDecodeError and JSONDecodeError
                header = None
            if isinstance(header, dict):
                return
    if head.startswith(PICKLE_MAGIC):
        raise _not_safetensors(name, [path.name])
    raise _broken(name, f"{path.name} is not a safetensors file")


def check_weights(model_folder: Path, name: str) -> str | None:
    """Check on disk every weight file a load of `model_folder` may read; return the diffusers variant to load.

    Every shard index (diffusers' names, and any other `diffusion_pytorch_model*index*.json`) must name plain
    .safetensors files; every .safetensors file must have a safetensors header; the files read must fit in
    `max_weight_bytes()`. Run just before diffusers sees the folder.
    """
    names = {path.name for path in model_folder.iterdir()} if model_folder.is_dir() else set()
    plan = plan_weights(names, name, lambda index: read_json(model_folder / index, name))
    for index in sorted(names - set(plan.index_files)):
        if index.startswith(WEIGHTS_STEM) and index.endswith(".json") and "index" in index:
            index_shards(read_json(model_folder / index, name), index, name)
    for weights in sorted(n for n in names if n.endswith(".safetensors")):
        check_safetensors_file(model_folder / weights, name)
    check_weight_size(sum((model_folder / file).stat().st_size for file in plan.files), name)
    return plan.variant


class ModuleDenoiser(Denoiser):
    """A denoiser around a loaded torch module (UNet2DModel or PointDenoiserMLP).

    `predict(x_t, timestep)`: x_t is [B, *sample_shape]; timestep is 0-based (int or [B]). The module runs
    under inference mode in its own dtype and device; outputs come back on x_t's device in float32 or better.
    """

    def __init__(self, module: torch.nn.Module, layout: CheckpointLayout, *, name: str, description: str = "") -> None:
        config, scheduler = layout.model_config, layout.scheduler_config
        self.module = module.eval()
        self.name = name
        self.prediction = Prediction.parse(scheduler.get("prediction_type", "epsilon"))
        self.schedule = Schedule.from_diffusers_config(scheduler)
        self.sample_shape = sample_shape_of(config)
        self.clip_sample = bool(scheduler.get("clip_sample", True))  # diffusers' DDPMScheduler default
        self.learned_variance = has_learned_variance(config)
        self.variance_type = variance_type_of(scheduler, self.learned_variance, name)
        self.num_parameters = sum(parameter.numel() for parameter in module.parameters())
        self.description = description or f"{layout.model_class} checkpoint {name}"

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.module.parameters()).dtype

    @property
    def resolution(self) -> int | None:
        """Image side length in pixels (None for point models)."""
        return self.sample_shape[-1] if len(self.sample_shape) == 3 else None

    def predict(self, x_t: torch.Tensor, timestep: TimestepLike) -> DenoiserOutput:
        if tuple(x_t.shape[1:]) != self.sample_shape:
            raise ValueError(
                f"x_t must have shape [B, {', '.join(map(str, self.sample_shape))}]; got {tuple(x_t.shape)}"
            )
        steps = as_timesteps(timestep, self.schedule.num_train_timesteps)
        batch = x_t.shape[0]
        if steps.ndim == 0:
            steps = steps.expand(batch)  # [B]
        elif steps.shape[0] != batch:
            raise ValueError(f"got {steps.shape[0]} per-sample timesteps for a batch of {batch} samples")
        with torch.inference_mode():
            output = self.module(x_t.to(device=self.device, dtype=self.dtype), steps.to(self.device))
        output = output[0] if isinstance(output, tuple) else getattr(output, "sample", output)
        output = output.to(device=x_t.device, dtype=torch.promote_types(x_t.dtype, torch.float32))
        if output.is_inference():
            output = output.clone()  # a normal tensor, so callers may modify it in place
        if not self.learned_variance:
            return DenoiserOutput(prediction=output)
        prediction, variance_values = output.split(self.sample_shape[0], dim=1)  # [B, C, H, W] each
        return DenoiserOutput(prediction=prediction, variance_values=variance_values)


def variance_type_of(scheduler: dict[str, Any], learned_variance: bool, name: str) -> VarianceType:
    """The checkpoint's reverse variance: learned_range for split outputs, else the scheduler's fixed choice."""
    value = str(scheduler.get("variance_type") or "fixed_small")
    if learned_variance:
        if value not in ("learned_range", "fixed_small", "fixed_large"):
            raise _unsupported(name, f"its variance type {value!r} is not learned_range")
        return VarianceType.LEARNED_RANGE
    if value.startswith("learned"):
        raise _broken(name, f"variance_type is {value!r} but the model has no variance channels")
    return VarianceType.parse(value.removesuffix("_log"))


_IMPORT_LOCK = threading.Lock()


def _module_class(class_name: str) -> type:
    """The model class for a config's `_class_name`, imported on first use (diffusers takes seconds to import).

    Under a lock: diffusers' lazy first import is not thread-safe (two first loads at once raised ImportError).
    """
    with _IMPORT_LOCK:
        if class_name == "PointDenoiserMLP":
            from explorer.models.mlp import PointDenoiserMLP

            return PointDenoiserMLP
        from diffusers import UNet2DModel

        return UNet2DModel


def load_folder(
    folder: Path, *, name: str, device: torch.device, dtype: torch.dtype, description: str = ""
) -> ModuleDenoiser:
    """Load the checkpoint in `folder` (already on disk) onto `device` in `dtype`, from safetensors only."""
    layout = read_layout(folder, name)
    variant = check_weights(layout.model_folder, name)
    try:
        module = _module_class(layout.model_class).from_pretrained(
            str(layout.model_folder),
            use_safetensors=True,  # never fall back to pickled .bin weights
            local_files_only=True,
            variant=variant,
            torch_dtype=dtype,
        )
        return ModuleDenoiser(module.to(device), layout, name=name, description=description)
    except CheckpointError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise _broken(name, f"{type(error).__name__}: {_without_paths(first_line)}") from error


def _without_paths(text: str) -> str:
    """`text` with each absolute path shortened to its last part ('…/name'): messages never show server paths."""
    return _ABSOLUTE_PATH.sub(lambda match: "…/" + match.group(1), text)
