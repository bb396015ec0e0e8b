"""What a latent family is, as code: one subclass of `LatentFamily` per family, one instance each.

A `LatentDenoiser` (explorer.models.latent) holds the loaded modules and the conditioning; everything that differs
between families lives here instead of in branches on a name:

    capability           attribute / method              stable_diffusion   sdxl          ldm      dit
    prompt               takes_prompt                    yes                yes           no       no
    class label          takes_class_label               no                 no            no       yes
    default guidance w   default_guidance                7.5                5.0           1.0      4.0
    the forward pass     forward(model, x, steps)        text, CFG 2B       text + pooled no CFG   class, CFG 2B
                                                                            + size ids
    latent → RGB         latent_rgb, taesd_repo          SD matrix, taesd   SDXL, taesdxl none     SD, taesd
    latent size          downsample_factor, fixed_size   UNet levels        UNet levels   levels   patch 2, fixed
    page controls        controls (from the above)       prompt, w, φ, size same          size     label, w
    latent shape         latent_channels, sample_size    the network config's in_channels and sample_size

sd3 and flux are flow-matching transformers (see their modules): their schedule is the VP one of equal SNR at the
scheduler's σ grid (`training_schedule`), and `pipeline_sigmas` gives the grid their pipeline visits; flux packs 2×2
latent patches into tokens (a quarter of the transformer's in_channels) and has no sample_size in its config.

A new family is one file here (a subclass), one row in `explorer.models.pipelines` (its pipeline class and the
components it may name) and one entry in `explorer.models.families.FAMILIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from explorer.diffusion.conditioning import Conditioning
from explorer.diffusion.flow import FlowSchedule
from explorer.diffusion.schedules import Schedule
from explorer.models.pipelines import Family

Prediction3 = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]  # conditional, unconditional, variance
LatentRGB = tuple[tuple[tuple[float, ...], ...], tuple[float, float, float]]  # rows per latent channel; bias


@dataclass(frozen=True)
class LatentParts:
    """The loaded modules of a latent checkpoint (shared by every conditioned view of it).

    text_encoders and tokenizers are in the pipeline's order (text_encoder, text_encoder_2, …); empty when the
    family takes no prompt."""

    network: torch.nn.Module  # UNet2DConditionModel, UNet2DModel or DiTTransformer2DModel
    decoder: torch.nn.Module  # AutoencoderKL or VQModel
    text_encoders: tuple[torch.nn.Module, ...] = ()
    tokenizers: tuple[Any, ...] = ()

    @property
    def text_encoder(self) -> torch.nn.Module | None:
        """The first text encoder (CLIP-L), or None."""
        return self.text_encoders[0] if self.text_encoders else None

    @property
    def tokenizer(self) -> Any:
        return self.tokenizers[0] if self.tokenizers else None


class LatentDenoiser(Protocol):
    """What a family reads from the denoiser view it serves (explorer.models.latent.LatentDenoiser)."""

    name: str
    parts: LatentParts
    schedule: Schedule
    conditioning: Conditioning
    latent_channels: int
    learned_variance: bool
    num_classes: int | None
    sample_shape: tuple[int, int, int]
    image_shape: tuple[int, int, int]
    pipeline_options: dict[str, Any]
    scheduler_config: dict[str, Any]

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def guidance_scale(self) -> float: ...

    def embeddings(self) -> dict[str, torch.Tensor]: ...


class LatentFamily:
    """The behaviour of one family. Methods take the `LatentDenoiser` they serve; they hold no state of their own."""

    family: Family
    denoiser_folder = "unet"
    decoder_folder = "vae"
    text_folders: tuple[tuple[str, str], ...] = ()  # (text encoder folder, its tokenizer folder), in order
    default_guidance = 1.0
    default_steps = 50  # what the family's diffusers pipeline defaults to
    takes_prompt = False
    takes_class_label = False
    classifier_free = True  # guidance w > 1 runs an unconditional pass beside the conditional one (batch 2B)
    fixed_size = False  # the network's positional embedding fixes the latent size (DiT)
    latent_rgb: LatentRGB | None = None
    taesd_repo: str | None = None
    title = "latent diffusion"  # what the page calls the family

    @property
    def conditional(self) -> bool:
        """True for families that take a prompt or a class label."""
        return self.takes_prompt or self.takes_class_label

    @property
    def controls(self) -> frozenset[str]:
        """The run settings this family takes, by the names the page and the API give them."""
        taken = {"latent_size"} if not self.fixed_size else set()
        if self.takes_prompt:
            taken |= {"prompt", "negative_prompt", "guidance", "guidance_rescale"}
        if self.takes_class_label:
            taken |= {"class_label", "guidance"}
        return frozenset(taken)

    def model_controls(self, model: LatentDenoiser) -> frozenset[str]:
        """The run settings a loaded checkpoint of this family takes (a family's variants may differ)."""
        return self.controls

    # -- shapes --------------------------------------------------------------------------------------

    def latent_channels(self, network: torch.nn.Module) -> int:
        """Channels of one latent: the network's input channels."""
        return int(network.config.in_channels)

    def sample_size(self, network: torch.nn.Module) -> tuple[int, int]:
        """The latent (height, width) the checkpoint samples by default: its network's sample_size."""
        size = network.config.sample_size
        return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def downsample_factor(self, network: torch.nn.Module) -> int:
        """The latent size must be a multiple of this: 2^(levels − 1) of a UNet."""
        return 2 ** (len(network.config.block_out_channels) - 1)

    def check_size(self, model: LatentDenoiser, height: int, width: int) -> None:
        """Refuse a latent size the network cannot take (beyond the multiple of `downsample_factor`)."""

    def num_classes(self, network: torch.nn.Module) -> int | None:
        return None

    # -- the noise schedule ------------------------------------------------------------------------------

    def training_schedule(self, model: LatentDenoiser) -> Schedule:
        """The schedule of the checkpoint's scheduler config at the model's latent size (only FLUX's depends on
        the size: its dynamic shift)."""
        return Schedule.from_diffusers_config(model.scheduler_config)

    def pipeline_sigmas(self, model: LatentDenoiser, num_inference_steps: int) -> FlowSchedule:
        """The σ grid (and timesteps σ·T) the family's diffusers pipeline visits in n steps: flow families only."""
        raise ValueError(f"{model.name} is not a flow-matching model: its pipeline visits no σ grid")

    def set_timesteps_options(self, model: LatentDenoiser, num_inference_steps: int) -> dict[str, Any]:
        """The keywords the family's diffusers pipeline passes to its scheduler's `set_timesteps` besides n (FLUX:
        its σ = linspace(1, 1/n, n) and μ); none for the others."""
        return {}

    # -- conditioning ----------------------------------------------------------------------------------

    def check_conditioning(self, model: LatentDenoiser, conditioning: Conditioning) -> None:
        """Refuse, by field name, what this family cannot be conditioned on."""
        given = [
            field
            for field in ("prompt", "negative_prompt", "guidance_scale", "class_label")
            if getattr(conditioning, field) is not None
        ] + (["guidance_rescale"] if conditioning.guidance_rescale else [])
        if not self.conditional and given:
            raise ValueError(f"{', '.join(given)}: {model.name} is an unconditional model and takes no conditioning")
        if self.takes_prompt and conditioning.class_label is not None:
            raise ValueError(f"class_label: {model.name} is text-conditioned; give a prompt instead")
        if self.takes_class_label and (conditioning.prompt or conditioning.negative_prompt):
            raise ValueError(f"prompt: {model.name} is class-conditioned; give a class_label instead")

    def guidance_scale(self, model: LatentDenoiser) -> float:
        """The w this view steps with: the conditioning's, else the family's default (1 for unconditional ones)."""
        return model.conditioning.scale(self.default_guidance) if self.conditional else 1.0

    def embed(self, model: LatentDenoiser) -> dict[str, torch.Tensor]:
        """Whatever the forward pass needs from the conditioning, computed once when a view is bound (text
        embeddings); cached on the view by the denoiser."""
        return {}

    # -- the forward pass (inside inference mode) --------------------------------------------------------

    def forward(self, model: LatentDenoiser, x: torch.Tensor, steps: torch.Tensor) -> Prediction3:
        """(f_c, f_u or None when unguided, learned-variance channels or None) for latents x [B, C, h, w]."""
        return model.parts.network(x, steps).sample, None, None

    # -- latents ↔ pictures ----------------------------------------------------------------------------

    def encoder_latents(self, encoded: Any) -> torch.Tensor:
        """The latents of an `encode` output before scaling: the mean of a VAE's posterior."""
        return encoded.latent_dist.mean

    # -- loading ---------------------------------------------------------------------------------------

    def load_tokenizers(self, folder: Path, classes: dict[str, str]) -> tuple[Any, ...]:
        """The tokenizers of `text_folders` the checkpoint has (`classes`: folder → class name, from its
        model_index.json against the allowlist), from the local files only."""
        if not self.text_folders:
            return ()
        import transformers

        return tuple(
            getattr(transformers, classes[tokenizer]).from_pretrained(str(folder / tokenizer), local_files_only=True)
            for _, tokenizer in self.text_folders
            if tokenizer in classes
        )


def encode_t5(tokenizer: Any, encoder: torch.nn.Module, text: str, max_length: int) -> torch.Tensor:
    """T5's last hidden state for `text`, [1, max_length, D], tokenized as SD3's and FLUX's pipelines do (max-length
    padding, truncation, no attention mask)."""
    tokens = tokenizer(
        [text],
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    device = next(encoder.parameters()).device
    with torch.inference_mode():
        return encoder(tokens.input_ids.to(device))[0]


def encode_clip(tokenizer: Any, encoder: torch.nn.Module, text: str, **options: Any) -> Any:
    """One CLIP encoder's output for `text`, tokenized as diffusers' pipelines do (max-length padding, truncation)."""
    tokens = tokenizer(
        [text], padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    device = next(encoder.parameters()).device
    mask = tokens.attention_mask.to(device) if getattr(encoder.config, "use_attention_mask", False) else None
    with torch.inference_mode():
        return encoder(tokens.input_ids.to(device), attention_mask=mask, **options)
