"""A checkpoint folder on disk (diffusers layout, safetensors only) turned into a `Denoiser`.

Two layouts are read: flat (config.json, diffusion_pytorch_model.safetensors and scheduler_config.json at
the root, as google/ddpm-cifar10-32 and the bundled checkpoints) and pipeline (model_index.json with
`unet/` and `scheduler/` folders). The model class is dispatched on config.json's `_class_name` against
an allowlist; text-conditioned and latent models are refused, pickled weights are never opened.

Before diffusers sees a folder, every weight file it would read is checked on disk (`weights.check_weights`).

`ModuleDenoiser` takes diffusers' 0-based timestep: an int for the whole batch
or a [B] tensor.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from explorer.diffusion.clipping import clipping_of
from explorer.diffusion.denoiser import Denoiser, DenoiserOutput
from explorer.diffusion.parameterization import prediction_of
from explorer.diffusion.posterior import VarianceType
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.tensors import TimestepLike, as_timesteps
from explorer.models.errors import CheckpointError as CheckpointError  # re-exported: explorer imports both from here
from explorer.models.errors import CheckpointProblem as CheckpointProblem
from explorer.models.errors import broken_files, missing_files, read_json, unsupported
from explorer.models.pipelines import SCHEDULER
from explorer.models.weights import check_weights

MODEL_CLASSES = ("UNet2DModel", "PointDenoiserMLP")
SCHEDULER_CLASSES = SCHEDULER.classes  # discrete-time β schedules (explorer.models.pipelines)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[^\s'\"/]+/)*([^\s'\"/]*)")
TEXT_COMPONENTS = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
LATENT_COMPONENTS = ("vae", "vqvae", "movq")

TEXT_CONDITIONED = (
    "it is text-conditioned, and text-conditioned checkpoints load only in the Stable Diffusion pipeline layouts "
    "(a model_index.json naming StableDiffusionPipeline or StableDiffusionXLPipeline)"
)
LATENT = (
    "it is a latent diffusion model, and latent checkpoints load only in a pipeline layout whose model_index.json "
    "names LDMPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline or DiTPipeline"
)


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
            raise unsupported(name, TEXT_CONDITIONED)
    for component in LATENT_COMPONENTS:
        if (folder / component).is_dir():
            raise unsupported(name, LATENT)
    index_path = folder / "model_index.json"
    if (folder / "config.json").is_file():  # flat layout (old google/ddpm-* repos also carry a model_index.json)
        model_folder, scheduler_path = folder, folder / "scheduler_config.json"
        if index_path.is_file():
            _check_components(read_json(index_path, name), name)
    elif index_path.is_file():
        _check_components(read_json(index_path, name), name)
        model_folder, scheduler_path = folder / "unet", folder / "scheduler" / "scheduler_config.json"
    else:
        raise missing_files(name, "config.json (or model_index.json with a unet/ folder)")
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
        raise unsupported(name, TEXT_CONDITIONED)
    if present & set(LATENT_COMPONENTS):
        raise unsupported(name, LATENT)
    if "unet" not in present:
        raise unsupported(name, f"its pipeline has no UNet (components: {', '.join(sorted(present)) or 'none'})")


def check_model_config(config: dict[str, Any], name: str) -> None:
    """Refuse model configs outside the allowlist, conditional models and continuous-time embeddings."""
    class_name = config.get("_class_name")
    if not isinstance(class_name, str):
        raise broken_files(name, "config.json names no model class (_class_name)")
    if class_name == "UNet2DConditionModel" or config.get("cross_attention_dim") is not None:
        raise unsupported(name, TEXT_CONDITIONED)
    if class_name in ("AutoencoderKL", "VQModel"):
        raise unsupported(name, LATENT)
    if class_name not in MODEL_CLASSES:
        raise unsupported(name, f"its model class {class_name!r} is not one of {', '.join(MODEL_CLASSES)}")
    if config.get("num_class_embeds") is not None or config.get("class_embed_type") is not None:
        raise unsupported(name, "it is class-conditional, and class-conditional checkpoints load only as a DiTPipeline")
    if config.get("time_embedding_type", "positional") != "positional":
        raise unsupported(name, "it takes a continuous noise level (Fourier time embedding), not DDPM timesteps")


def check_scheduler_config(config: dict[str, Any], name: str) -> None:
    """Refuse schedulers without a discrete noise schedule (score-SDE, Karras VE); flow matching's σ grid is one."""
    class_name = config.get("_class_name")
    if class_name is not None and class_name not in SCHEDULER_CLASSES:
        raise unsupported(name, f"its scheduler {class_name} has no discrete-time DDPM β schedule")


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


class ModuleDenoiser(Denoiser):
    """A denoiser around a loaded torch module (UNet2DModel or PointDenoiserMLP).

    `predict(x_t, timestep)`: x_t is [B, *sample_shape]; timestep is 0-based (int or [B]). The module runs
    under inference mode in its own dtype and device; outputs come back on x_t's device in float32 or better.
    """

    def __init__(self, module: torch.nn.Module, layout: CheckpointLayout, *, name: str, description: str = "") -> None:
        config, scheduler = layout.model_config, layout.scheduler_config
        self.module = module.eval()
        self.name = name
        self.prediction = prediction_of(scheduler)
        self.schedule = Schedule.from_diffusers_config(scheduler)
        self.scheduler_config = dict(scheduler)  # as read, with its _class_name
        self.sample_shape = sample_shape_of(config)
        # the config's clip_sample, else diffusers' default for its class (DDPM, DDIM: on; flow matching: none)
        self.clip_sample = clipping_of(scheduler).clip_sample
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
        steps = batch_timesteps(x_t, timestep, self.sample_shape, self.schedule.num_train_timesteps)
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


def batch_timesteps(
    x_t: torch.Tensor, timestep: TimestepLike, sample_shape: tuple[int, ...], num_train_timesteps: int
) -> torch.Tensor:
    """Check x_t against [B, *sample_shape] and return one 0-based timestep per sample ([B], from an int or [B])."""
    if tuple(x_t.shape[1:]) != sample_shape:
        raise ValueError(f"x_t must have shape [B, {', '.join(map(str, sample_shape))}]; got {tuple(x_t.shape)}")
    steps = as_timesteps(timestep, num_train_timesteps)
    batch = x_t.shape[0]
    if steps.ndim == 0:
        return steps.expand(batch)  # [B]
    if steps.shape[0] != batch:
        raise ValueError(f"got {steps.shape[0]} per-sample timesteps for a batch of {batch} samples")
    return steps


def variance_type_of(scheduler: dict[str, Any], learned_variance: bool, name: str) -> VarianceType:
    """The checkpoint's reverse variance: learned_range for split outputs, else the scheduler's fixed choice."""
    value = str(scheduler.get("variance_type") or "fixed_small")
    if learned_variance:
        if value not in ("learned_range", "fixed_small", "fixed_large"):
            raise unsupported(name, f"its variance type {value!r} is not learned_range")
        return VarianceType.LEARNED_RANGE
    if value.startswith("learned"):
        raise broken_files(name, f"variance_type is {value!r} but the model has no variance channels")
    return VarianceType.parse(value.removesuffix("_log"))


IMPORT_LOCK = threading.Lock()  # diffusers' lazy first import is not thread-safe


def _module_class(class_name: str) -> type:
    """The model class for a config's `_class_name`, imported on first use (diffusers takes seconds to import).

    Under a lock: diffusers' lazy first import is not thread-safe (two first loads at once raised ImportError).
    """
    with IMPORT_LOCK:
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
    with library_errors(name):
        module = _module_class(layout.model_class).from_pretrained(
            str(layout.model_folder),
            use_safetensors=True,  # never fall back to pickled .bin weights
            local_files_only=True,
            variant=variant,
            torch_dtype=dtype,
        )
        return ModuleDenoiser(module.to(device), layout, name=name, description=description)


@contextmanager
def library_errors(name: str) -> Iterator[None]:
    """Turn what diffusers or transformers raise on unreadable or mismatched files into one `broken_files`
    sentence that shows no server path; CheckpointErrors pass through."""
    try:
        yield
    except CheckpointError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise broken_files(name, f"{type(error).__name__}: {_without_paths(first_line)}") from error


def _without_paths(text: str) -> str:
    """`text` with each absolute path shortened to its last part ('…/name'): messages never show server paths."""
    return _ABSOLUTE_PATH.sub(lambda match: "…/" + match.group(1), text)
