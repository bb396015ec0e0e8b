"""Checkpoint families: which pipeline a Hub repo is, read from its model_index.json against an allowlist.

    family             model_index `_class_name`     denoiser folder and class                       decoder
    pixel              none (flat), DDPMPipeline, …   unet/ UNet2DModel                               none
    stable_diffusion   StableDiffusionPipeline        unet/ UNet2DConditionModel, with text_encoder/  vae/ AutoencoderKL
                                                      CLIPTextModel and tokenizer/ CLIPTokenizer
    sdxl               StableDiffusionXLPipeline      unet/ UNet2DConditionModel (text_time), with    vae/ AutoencoderKL
                                                      text_encoder/ CLIPTextModel, text_encoder_2/
                                                      CLIPTextModelWithProjection and two tokenizers
    sd3                StableDiffusion3Pipeline       transformer/ SD3Transformer2DModel, with two    vae/ AutoencoderKL
                                                      CLIP encoders with projection and optional T5
    flux               FluxPipeline                   transformer/ FluxTransformer2DModel on packed   vae/ AutoencoderKL
                                                      2×2 patches, with text_encoder/ CLIPTextModel
                                                      (pooled) and text_encoder_2/ T5EncoderModel
    ldm                LDMPipeline                    unet/ UNet2DModel on VQ latents                 vqvae/ VQModel
    dit                DiTPipeline                    transformer/ DiTTransformer2DModel (or          vae/ AutoencoderKL
                                                      Transformer2DModel), class labels

Pixel checkpoints keep their own path (`checkpoint.read_layout`); `read_pipeline` returns None for them. Every
other model_index.json is refused in one sentence unless its pipeline class, and every component it uses, is in the
allowlist with its library `diffusers` or `transformers` (a custom pipeline class or another library would be remote
code). Components the explorer never loads (safety checker, feature extractor) are neither downloaded nor checked.
Pure JSON reading: no torch, no diffusers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from explorer.models.errors import CheckpointError, CheckpointProblem, read_json, unsupported
from explorer.validation import Mode

DIFFUSERS_STEM = "diffusion_pytorch_model"  # diffusers' weight file names
TRANSFORMERS_STEM = "model"  # transformers' weight file names


class Family(Mode, field="family"):
    """A checkpoint family: how its parts fit together and what a step's tensors are (pixels or latents)."""

    PIXEL = "pixel"
    STABLE_DIFFUSION = "stable_diffusion"
    SDXL = "sdxl"
    SD3 = "sd3"
    FLUX = "flux"
    LDM = "ldm"
    DIT = "dit"


@dataclass(frozen=True)
class Component:
    """One folder of a pipeline: the library its class comes from, the classes allowed, its weight-file stem."""

    library: str
    classes: frozenset[str]
    stem: str | None  # None: no weights (tokenizer, scheduler)
    optional: bool = False  # the pipeline runs without it (SD3's T5 encoder and its tokenizer)


def _component(library: str, *classes: str, stem: str | None = DIFFUSERS_STEM, optional: bool = False) -> Component:
    return Component(library, frozenset(classes), stem, optional)


SCHEDULER = _component(
    "diffusers",
    "DDPMScheduler",
    "GaussianDDPMScheduler",  # diffusers 0.0.x's name of DDPMScheduler (schedules.current_scheduler_config)
    "DDIMScheduler",
    "PNDMScheduler",
    "DDPMParallelScheduler",
    "DDIMParallelScheduler",
    "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler",
    "DEISMultistepScheduler",
    "UniPCMultistepScheduler",
    "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler",
    "LMSDiscreteScheduler",
    "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "FlowMatchEulerDiscreteScheduler",  # flow matching: its σ grid is read as the VP schedule of equal SNR
    stem=None,
)
CLIP_TOKENIZER = _component("transformers", "CLIPTokenizer", "CLIPTokenizerFast", stem=None)
CLIP_WITH_PROJECTION = _component("transformers", "CLIPTextModelWithProjection", stem=TRANSFORMERS_STEM)
T5_TOKENIZER = _component("transformers", "T5TokenizerFast", "T5Tokenizer", stem=None, optional=True)
T5_ENCODER = _component("transformers", "T5EncoderModel", stem=TRANSFORMERS_STEM, optional=True)
FAMILY_COMPONENTS: dict[Family, dict[str, Component]] = {
    Family.STABLE_DIFFUSION: {
        "unet": _component("diffusers", "UNet2DConditionModel"),
        "vae": _component("diffusers", "AutoencoderKL"),
        "text_encoder": _component("transformers", "CLIPTextModel", stem=TRANSFORMERS_STEM),
        "tokenizer": CLIP_TOKENIZER,
        "scheduler": SCHEDULER,
    },
    Family.SDXL: {
        "unet": _component("diffusers", "UNet2DConditionModel"),
        "vae": _component("diffusers", "AutoencoderKL"),
        "text_encoder": _component("transformers", "CLIPTextModel", stem=TRANSFORMERS_STEM),
        "text_encoder_2": CLIP_WITH_PROJECTION,
        "tokenizer": CLIP_TOKENIZER,
        "tokenizer_2": CLIP_TOKENIZER,
        "scheduler": SCHEDULER,
    },
    Family.SD3: {
        "transformer": _component("diffusers", "SD3Transformer2DModel"),
        "vae": _component("diffusers", "AutoencoderKL"),
        "text_encoder": CLIP_WITH_PROJECTION,
        "text_encoder_2": CLIP_WITH_PROJECTION,
        "text_encoder_3": T5_ENCODER,
        "tokenizer": CLIP_TOKENIZER,
        "tokenizer_2": CLIP_TOKENIZER,
        "tokenizer_3": T5_TOKENIZER,
        "scheduler": SCHEDULER,
    },
    Family.FLUX: {  # FLUX.1 needs its T5: neither it nor its tokenizer is optional there
        "transformer": _component("diffusers", "FluxTransformer2DModel"),
        "vae": _component("diffusers", "AutoencoderKL"),
        "text_encoder": _component("transformers", "CLIPTextModel", stem=TRANSFORMERS_STEM),
        "text_encoder_2": replace(T5_ENCODER, optional=False),
        "tokenizer": CLIP_TOKENIZER,
        "tokenizer_2": replace(T5_TOKENIZER, optional=False),
        "scheduler": SCHEDULER,
    },
    Family.LDM: {
        "unet": _component("diffusers", "UNet2DModel"),
        "vqvae": _component("diffusers", "VQModel"),
        "scheduler": SCHEDULER,
    },
    Family.DIT: {
        "transformer": _component("diffusers", "DiTTransformer2DModel", "Transformer2DModel"),
        "vae": _component("diffusers", "AutoencoderKL"),
        "scheduler": SCHEDULER,
    },
}
PIPELINE_FAMILIES: dict[str, Family] = {
    "DDPMPipeline": Family.PIXEL,
    "DDIMPipeline": Family.PIXEL,
    "PNDMPipeline": Family.PIXEL,
    "StableDiffusionPipeline": Family.STABLE_DIFFUSION,
    "StableDiffusionXLPipeline": Family.SDXL,
    "StableDiffusion3Pipeline": Family.SD3,
    "FluxPipeline": Family.FLUX,
    "LDMPipeline": Family.LDM,
    "DiTPipeline": Family.DIT,
}
PIPELINE_OPTIONS = frozenset({"force_zeros_for_empty_prompt", "requires_safety_checker"})  # read from the index
IGNORED_COMPONENTS = frozenset({"safety_checker", "feature_extractor", "image_encoder"})  # never loaded
WHY_NOT: dict[str, str] = {  # pipelines people bring that the explorer does not run, and why
    "FluxFillPipeline": "FLUX.1 Fill is an inpainting model whose transformer also takes the masked image's latents, "
    "which the explorer's text-to-image loop does not supply; load FLUX.1 schnell or dev instead",
    "FluxControlPipeline": "FLUX.1 Canny/Depth take a control image's latents beside the noise, which the explorer's "
    "text-to-image loop does not supply; load FLUX.1 schnell or dev instead",
    "FluxControlNetPipeline": "a FLUX ControlNet needs a second network and a control image, which the explorer does "
    "not load; load the FLUX.1 base model (schnell or dev) instead",
    "FluxKontextPipeline": "FLUX.1 Kontext edits an input image whose latents join the sequence, which the explorer's "
    "text-to-image loop does not supply; load FLUX.1 schnell or dev instead",
    "FluxPriorReduxPipeline": "FLUX.1 Redux is an image encoder that feeds another pipeline and has no denoiser of its "
    "own",
    "StableDiffusionXLImg2ImgPipeline": "an SDXL refiner is an image-to-image model with only the second text "
    "encoder; load the SDXL base checkpoint instead",
    "ConsistencyModelPipeline": "a consistency model has no discrete β schedule",
}
TOKENIZER_FILES = ("*.json", "*.txt")  # vocab.json, merges.txt and the small configs of a tokenizer folder


@dataclass(frozen=True)
class PipelineSpec:
    """A latent or conditional pipeline checkpoint: its family and the classes its used components name."""

    family: Family
    pipeline_class: str
    classes: dict[str, str]  # component folder -> class name, for the components the family uses
    options: dict[str, bool | int | float | str] = field(default_factory=dict)  # e.g. force_zeros_for_empty_prompt

    def weight_folders(self) -> dict[str, str]:
        """Component folders that hold weights, with the stem of their weight files."""
        parts = FAMILY_COMPONENTS[self.family]
        return {folder: parts[folder].stem for folder in self.classes if parts[folder].stem is not None}

    def tokenizer_patterns(self) -> tuple[str, ...]:
        """Download patterns of the tokenizer folders this checkpoint uses (their small text files)."""
        parts = FAMILY_COMPONENTS[self.family]
        return tuple(
            f"{folder}/{pattern}"
            for folder in self.classes
            if parts[folder].stem is None and folder.startswith("tokenizer")
            for pattern in TOKENIZER_FILES
        )


def _refuse_custom(name: str, what: str) -> CheckpointError:
    return unsupported(name, f"{what}, and the explorer never runs code that comes with a checkpoint")


def read_pipeline(folder: Path, name: str) -> PipelineSpec | None:
    """The pipeline spec of the checkpoint in `folder` (configs only), or None for a pixel checkpoint.

    Refuses, in one sentence each: a custom pipeline class, a component from another library or of a class outside
    the allowlist, a family the explorer does not run, and a missing component.
    """
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        return None
    index = read_json(index_path, name)
    pipeline = index.get("_class_name")
    if pipeline is None:  # early pipeline repos: unet and scheduler only, read as pixel checkpoints
        return None
    if not isinstance(pipeline, str):
        raise _refuse_custom(name, f"its pipeline class {str(pipeline)[:60]} is a custom pipeline")
    if pipeline in WHY_NOT:
        raise unsupported(name, WHY_NOT[pipeline])
    family = PIPELINE_FAMILIES.get(pipeline)
    if family is None:
        if pipeline.endswith("Pipeline") and pipeline[:1].isupper() and pipeline.isidentifier():
            known = ", ".join(sorted(PIPELINE_FAMILIES))
            raise unsupported(name, f"its pipeline {pipeline} is not a family the explorer runs ({known})")
        raise _refuse_custom(name, f"its pipeline class {pipeline[:60]!r} is a custom pipeline")
    if family is Family.PIXEL:
        return None
    parts = FAMILY_COMPONENTS[family]
    classes: dict[str, str] = {}
    options = {
        key: value
        for key, value in index.items()
        if not key.startswith("_") and isinstance(value, bool | int | float | str) and key in PIPELINE_OPTIONS
    }
    for key, value in index.items():
        if key.startswith("_") or key in IGNORED_COMPONENTS or not isinstance(value, list):
            continue
        if len(value) != 2 or value == [None, None]:
            continue
        library, class_name = value
        if library not in ("diffusers", "transformers"):
            raise _refuse_custom(name, f"its component {key} comes from {str(library)[:40]!r}, not diffusers")
        if key not in parts:
            raise unsupported(name, f"its {pipeline} has a component {key!r} the explorer does not know")
        part = parts[key]
        if library != part.library or class_name not in part.classes:
            allowed = ", ".join(sorted(part.classes))
            raise unsupported(name, f"its {key} is {library}.{str(class_name)[:60]}, not one of {allowed}")
        classes[key] = str(class_name)
    missing = [key for key, part in parts.items() if key not in classes and not part.optional]
    if missing:
        raise CheckpointError(
            CheckpointProblem.MISSING_FILES,
            f"{name!r} is missing the {', '.join(missing)} its {pipeline} needs, so it cannot be loaded.",
        )
    return PipelineSpec(family, pipeline, classes, options)
