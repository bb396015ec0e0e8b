"""Latent and conditional checkpoints as denoisers: Stable Diffusion 1.x/2.x, LDM (VQ) and DiT (class labels).

`LatentDenoiser` is a `Denoiser` whose samples are latents [B, C, h, w]: called with x_t and diffusers' 0-based
timestep it returns the (guided) prediction in the checkpoint's own space, exactly as the family's diffusers pipeline
computes it inside its loop:

    family             forward pass (B samples)                                   guided when w > 1
    stable_diffusion   unet(x, t, encoder_hidden_states=CLIP(prompt))             batch [uncond; cond] of 2B
    sdxl               unet(x, t, CLIP-L ⊕ CLIP-G, pooled, size ids)              batch [uncond; cond] of 2B
    sd3                transformer(x_σ, σT, CLIP-L ⊕ CLIP-G ⊕ T5, pooled)          batch [uncond; cond] of 2B
    flux               unpack(transformer(pack(x_σ), σ, T5, CLIP pooled, ids,     never: dev takes w as an input
                       guidance w for dev))                                       (schnell takes none)
    ldm                unet(x, t)                                                 never (unconditional)
    dit                transformer(x, t, class_labels=y)[:, :C] (ε̂; [:, C:] σ)    batch [cond; null] of 2B

Each family's forward pass, conditioning rules and latent drawing are its behaviour (`explorer.models.families`);
this module only holds the modules, binds a view to its conditioning and runs the step's pass.

`condition(Conditioning)` returns a denoiser bound to a prompt (encoded once) or a class label, sharing the modules;
the guided prediction f_u + w (f_c − f_u) (`explorer.diffusion.conditioning`) is what the sampler steps with, and
`DenoiserOutput.conditional` / `.unconditional` keep both. `decode(latents, decoder)` draws frames (`decoders`).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from explorer.diffusion.clipping import clipping_of
from explorer.diffusion.conditioning import Conditioning, guide, rescale_guidance
from explorer.diffusion.denoiser import Denoiser, DenoiserOutput
from explorer.diffusion.flow import FlowSchedule
from explorer.diffusion.parameterization import Prediction, prediction_of
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.tensors import TimestepLike
from explorer.models import decoders, memory
from explorer.models.checkpoint import (
    IMPORT_LOCK,
    batch_timesteps,
    check_scheduler_config,
    library_errors,
    variance_type_of,
)
from explorer.models.decoders import Decoder
from explorer.models.errors import broken_files, read_json
from explorer.models.families import LatentParts, behaviour
from explorer.models.pipelines import FAMILY_COMPONENTS, PipelineSpec
from explorer.models.weights import check_pipeline_weights
from explorer.validation import check_int


class LatentDenoiser(Denoiser):
    """A latent (and possibly conditional) checkpoint. x_t: [B, C, h, w] latents; timestep 0-based (int or [B]).

    Attributes beyond `Denoiser`'s: family, conditioning (what this view is bound to), guidance_scale (the scale
    this view steps with), scaling_factor and vae_scale_factor (latent → pixel), image_shape (C, H, W) of a decoded
    frame, num_classes (dit).
    """

    def __init__(
        self, parts: LatentParts, spec: PipelineSpec, scheduler: dict[str, Any], *, name: str, description: str
    ) -> None:
        self.parts, self.family, self.name = parts, spec.family, name
        self.kind = behaviour(spec.family)
        self.pipeline_options = dict(spec.options)
        config = parts.network.config
        self.scheduler_config = dict(scheduler)
        self.prediction = prediction_of(scheduler)
        # The config's clip_sample, else diffusers' default for its class, as for every checkpoint (DDIM's default
        # is True even for latents, with a warning that SD configs should set it false; the published ones do).
        self.clip_sample = clipping_of(scheduler).clip_sample
        self.latent_channels = self.kind.latent_channels(parts.network)
        height, width = self.kind.sample_size(parts.network)
        self.sample_shape = (self.latent_channels, height, width)
        self.schedule = self.kind.training_schedule(self)  # FLUX's shift depends on the latent size
        self.learned_variance = int(config.out_channels or self.latent_channels) == 2 * self.latent_channels
        self.variance_type = variance_type_of(scheduler, self.learned_variance, name)
        self.default_steps = self.kind.default_steps
        self.default_guidance = self.kind.default_guidance
        self.num_classes = self.kind.num_classes(parts.network)
        decoder_config = parts.decoder.config
        self.scaling_factor = float(getattr(decoder_config, "scaling_factor", 1.0) or 1.0)
        self.shift_factor = float(getattr(decoder_config, "shift_factor", None) or 0.0)  # SD3 and FLUX VAEs
        self.vae_scale_factor = 2 ** (len(decoder_config.block_out_channels) - 1)
        self.image_shape = (
            int(decoder_config.out_channels),
            height * self.vae_scale_factor,
            width * self.vae_scale_factor,
        )
        modules = [parts.network, parts.decoder, *parts.text_encoders]
        self.num_parameters = sum(p.numel() for module in modules for p in module.parameters())
        self.description = description
        self.conditioning = Conditioning()
        self._embeddings: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    # -- the denoiser contract --------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.parts.network.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parts.network.parameters()).dtype

    @property
    def conditional(self) -> bool:
        """True for families that take a prompt or a class label."""
        return self.kind.conditional

    @property
    def guidance_scale(self) -> float:
        """The guidance scale w this view steps with: the conditioning's, else the family's default (1 for dit
        without a class label: the null class alone)."""
        return self.kind.guidance_scale(self)

    def condition(self, conditioning: Conditioning) -> LatentDenoiser:
        """This model bound to `conditioning` (prompt encoded once, here); the modules are shared, not copied."""
        if not isinstance(conditioning, Conditioning):
            raise TypeError(f"condition takes a Conditioning; got {type(conditioning).__name__}")
        self.kind.check_conditioning(self, conditioning)
        bound = copy.copy(self)
        bound.conditioning = conditioning
        bound._embeddings, bound._lock = {}, threading.Lock()
        bound.embeddings()  # encoded once, now
        return bound

    def embeddings(self) -> dict[str, torch.Tensor]:
        """What the family's forward pass needs from this view's conditioning (text embeddings), computed once."""
        with self._lock:
            if not self._embeddings:
                self._embeddings = self.kind.embed(self)
            return self._embeddings

    def predict(self, x_t: torch.Tensor, timestep: TimestepLike) -> DenoiserOutput:
        steps = batch_timesteps(x_t, timestep, self.sample_shape, self.schedule.num_train_timesteps)
        x = x_t.to(device=self.device, dtype=self.dtype)
        steps = steps.to(self.device)
        with torch.inference_mode():
            conditional, unconditional, variance = self.kind.forward(self, x, steps)
        back = torch.promote_types(x_t.dtype, torch.float32)

        def out(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device=x_t.device, dtype=back).clone()

        conditional, unconditional, variance = out(conditional), out(unconditional), out(variance)
        prediction = conditional
        if unconditional is not None:
            prediction = guide(conditional, unconditional, self.guidance_scale)
            prediction = rescale_guidance(prediction, conditional, self.conditioning.guidance_rescale)
        return DenoiserOutput(
            prediction=prediction,
            variance_values=variance,
            conditional=conditional if self.conditional else None,
            unconditional=unconditional,
        )

    def resized(self, height: int, width: int) -> LatentDenoiser:
        """This model sampling latents of height × width (e.g. SD at a reduced resolution on a CPU); both must be
        multiples of the network's downsampling factor. Modules and conditioning are shared."""
        factor = self.kind.downsample_factor(self.parts.network)
        for field, size in (("height", height), ("width", width)):
            if isinstance(size, bool) or not isinstance(size, int) or size < factor or size % factor:
                raise ValueError(f"{field} must be a positive multiple of {factor} latent pixels; got {size!r}")
        self.kind.check_size(self, height, width)
        bound = copy.copy(self)
        bound.sample_shape = (self.latent_channels, height, width)
        bound.image_shape = (self.image_shape[0], height * self.vae_scale_factor, width * self.vae_scale_factor)
        bound.schedule = self.kind.training_schedule(bound)  # FLUX's dynamic shift follows the size
        if bound._embeddings:  # size-dependent embeddings (SDXL's size ids) are computed again for the new size
            bound._embeddings, bound._lock = {}, threading.Lock()
            bound.embeddings()
        return bound

    def pipeline_sigmas(self, num_inference_steps: int) -> FlowSchedule:
        """The σ grid (descending, with the terminal 0) and timesteps σ·T that this flow model's diffusers pipeline
        visits in `num_inference_steps` steps at this latent size (FLUX: dynamic shift from the packed sequence
        length); `on_sigmas(grid.sigmas[:-1])` binds the model to it."""
        check_int(
            "num_inference_steps", num_inference_steps, 1, int(self.scheduler_config.get("num_train_timesteps", 1000))
        )
        return self.kind.pipeline_sigmas(self, num_inference_steps)

    def set_timesteps_options(self, num_inference_steps: int) -> dict[str, Any]:
        """The keywords this flow model's diffusers pipeline passes to `FlowMatchEulerDiscreteScheduler.set_timesteps`
        besides n (FLUX: sigmas = linspace(1, 1/n, n) and μ at this latent size; SD3: none)."""
        return self.kind.set_timesteps_options(self, num_inference_steps)

    def on_sigmas(self, sigmas: Sequence[float]) -> LatentDenoiser:
        """This flow model on the σ grid a flow scheduler visits (descending, without the terminal 0, as
        `FlowMatchEulerDiscreteScheduler.sigmas[:-1]`): its schedule becomes the VP schedule of equal SNR at exactly
        those σ, so DDIM (η = 0) over every one of them is flow Euler on that grid. Modules are shared."""
        if self.prediction is not Prediction.FLOW:
            raise ValueError(f"on_sigmas: {self.name} predicts {self.prediction.value}, not the flow velocity")
        bound = copy.copy(self)
        bound.schedule = Schedule.from_flow_sigmas(
            sorted(float(s) for s in sigmas), name=f"{self.schedule.name}, bound"
        )
        return bound

    # -- frames -----------------------------------------------------------------------------------

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Latents of images [B, 3, H, W] in [−1, 1]: (the mean of the VAE's posterior − shift_factor) ×
        scaling_factor (VQ: the encoder's output before quantisation × scaling_factor), float32 [B, C, H/f, W/f] on
        the CPU. What teacher forcing noises as x₀."""
        with torch.inference_mode():
            encoded = self.parts.decoder.encode(images.to(self.device, self.parts.decoder.dtype))
            latents = self.kind.encoder_latents(encoded)
        return ((latents - self.shift_factor) * self.scaling_factor).to("cpu", torch.float32)

    def decode(self, latents: torch.Tensor, decoder: str | Decoder = Decoder.EXACT) -> torch.Tensor:
        """Pictures of latents [B, C, h, w]: float32 CPU images in [−1, 1] (see `explorer.models.decoders`).

        exact: decoder.decode(latents / scaling_factor + shift_factor).sample, the model's own VAE (or VQ) decoder.
        """
        kind = Decoder.parse(decoder)
        if latents.ndim != 4 or tuple(latents.shape[1:])[:1] != self.sample_shape[:1]:
            raise ValueError(f"latents must have shape [B, {self.latent_channels}, h, w]; got {tuple(latents.shape)}")
        if kind is Decoder.LINEAR:
            return decoders.linear_rgb(latents, self.family)
        if kind is Decoder.CHANNELS:
            return decoders.channel_grid(latents)
        exact = kind is Decoder.EXACT
        module = self.parts.decoder if exact else decoders.taesd_module(self.family, self.device, torch.float32)
        scale, shift = (self.scaling_factor, self.shift_factor) if exact else (1.0, 0.0)  # TAESD: latents as they are
        with torch.inference_mode():
            images = module.decode(latents.to(self.device, module.dtype) / scale + shift).sample
        return images.to("cpu", torch.float32).clamp(-1.0, 1.0)


# --- loading -------------------------------------------------------------------------------------


def _diffusers_class(class_name: str) -> type:
    import diffusers

    return diffusers.DiTTransformer2DModel if class_name == "Transformer2DModel" else getattr(diffusers, class_name)


def load_pipeline(
    folder: Path, spec: PipelineSpec, *, name: str, device: torch.device, dtype: torch.dtype, description: str = ""
) -> LatentDenoiser:
    """Load the latent checkpoint in `folder` (configs read by `read_pipeline`) from safetensors only.

    Every weight folder is checked on disk first (`check_pipeline_weights`: no pickle, one size limit for all).
    """
    kind = behaviour(spec.family)
    variants = check_pipeline_weights(folder, spec.weight_folders(), name)
    scheduler = read_json(folder / "scheduler" / "scheduler_config.json", name)
    check_scheduler_config(scheduler, name)
    with library_errors(name):
        modules: dict[str, Any] = {}
        with IMPORT_LOCK:
            classes = {part: _component_class(spec, part) for part in variants}
        for part, variant in variants.items():
            options = {"use_safetensors": True, "local_files_only": True, "variant": variant}
            # The decoder stays in float32 (SD's VAE overflows in float16; diffusers upcasts it, `force_upcast`).
            precision = torch.float32 if part == kind.decoder_folder else dtype
            from_transformers = FAMILY_COMPONENTS[spec.family][part].library == "transformers"
            options["dtype" if from_transformers else "torch_dtype"] = precision
            modules[part] = classes[part].from_pretrained(str(folder / part), **options).eval()  # on the CPU
        parts = LatentParts(
            network=modules[kind.denoiser_folder],
            decoder=modules[kind.decoder_folder],
            text_encoders=tuple(modules[encoder] for encoder, _ in kind.text_folders if encoder in modules),
            tokenizers=kind.load_tokenizers(folder, spec.classes),
        )
        memory.place_parts(parts, device)  # on the device whole, or offloaded where the GPU is too small
        return LatentDenoiser(
            parts, spec, scheduler, name=name, description=description or f"{spec.pipeline_class} checkpoint {name}"
        )


def _component_class(spec: PipelineSpec, part: str) -> type:
    class_name = spec.classes[part]
    if FAMILY_COMPONENTS[spec.family][part].library == "transformers":
        import transformers

        return getattr(transformers, class_name)
    try:
        return _diffusers_class(class_name)
    except AttributeError:
        raise broken_files(spec.pipeline_class, f"diffusers has no class {class_name}") from None
