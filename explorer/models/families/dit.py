"""DiT: a class-conditional transformer on 4-channel SD VAE latents (facebook/DiT-XL-2-256).

    transformer(x, t, class_labels=y)[:, :C]    ε̂;  [:, C:] the learned σ channels (which DiTPipeline discards)
    guided: one batch [cond; null] of 2B         the null class is num_embeds_ada_norm (1000 for ImageNet)

Without a class label the view is the null class alone (w = 1). The positional embedding fixes the latent size.
"""

from __future__ import annotations

import torch

from explorer.diffusion.conditioning import Conditioning
from explorer.models.families.base import LatentDenoiser, LatentFamily, Prediction3
from explorer.models.families.stable_diffusion import SD_LATENT_RGB
from explorer.models.pipelines import Family


class DiT(LatentFamily):
    family = Family.DIT
    title = "DiT (latent, class-conditioned, learned σ)"
    denoiser_folder = "transformer"
    default_guidance = 4.0  # DiTPipeline's default
    takes_class_label = True
    fixed_size = True  # its positional embedding fixes the latent size
    latent_rgb = (SD_LATENT_RGB, (0.0, 0.0, 0.0))
    taesd_repo = "madebyollin/taesd"

    def downsample_factor(self, network: torch.nn.Module) -> int:
        return 2

    def check_size(self, model: LatentDenoiser, height: int, width: int) -> None:
        if (height, width) != model.sample_shape[1:]:
            raise ValueError(f"a DiT's positional embedding fixes its latent size at {model.sample_shape[1:]}")

    def num_classes(self, network: torch.nn.Module) -> int | None:
        return int(network.config.num_embeds_ada_norm)

    def check_conditioning(self, model: LatentDenoiser, conditioning: Conditioning) -> None:
        super().check_conditioning(model, conditioning)
        label, classes = conditioning.class_label, model.num_classes
        if label is not None and classes is not None and label >= classes:
            raise ValueError(f"class_label must be a whole number in [0, {classes - 1}]; got {label}")

    def guidance_scale(self, model: LatentDenoiser) -> float:
        if model.conditioning.class_label is None:
            return 1.0  # the null class alone
        return super().guidance_scale(model)

    def forward(self, model: LatentDenoiser, x: torch.Tensor, steps: torch.Tensor) -> Prediction3:
        batch, channels, network = x.shape[0], model.latent_channels, model.parts.network
        label, null = model.conditioning.class_label, model.num_classes
        labels = torch.full((batch,), null if label is None else label, device=x.device)
        if model.guidance_scale <= 1.0:
            output = network(x, timestep=steps, class_labels=labels).sample
            conditional, unconditional, rest = output[:, :channels], None, output[:, channels:]
        else:
            nulls = torch.full((batch,), null, device=x.device)
            output = network(
                torch.cat([x, x]), timestep=torch.cat([steps, steps]), class_labels=torch.cat([labels, nulls])
            ).sample  # [2B, 2C or C, h, w]: diffusers' order, conditional first
            conditional, unconditional = output[:, :channels].chunk(2)
            rest = output[:batch, channels:]  # the conditional pass's σ channels
        return conditional, unconditional, rest if model.learned_variance else None
