"""How a run's views become pictures: pixel-space views as they are, latent views through one of the model's decoders.

A latent model's frames are latents [B, C, h, w]. The page holds every frame drawn with the instant linear
latent → RGB projection of its family (the raw channels side by side where the family has none, e.g. LDM's VQ
latents); the model's own VAE (or VQ) decoder and TAESD draw the frame on screen on demand (`decode_frame`), and the
final samples are always decoded exactly. Every picture says which decoder drew it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explorer.diffusion.denoiser import Denoiser
from explorer.models.decoders import LATENT_RGB, Decoder
from ui.models import load_model, takes_conditioning

FRAME_DECODER = Decoder.LINEAR  # what the page's frames of a latent run are drawn with
DECODER_NAMES = {
    Decoder.EXACT: "the model's own VAE decoder",
    Decoder.TAESD: "TAESD (tiny decoder)",
    Decoder.LINEAR: "linear latent→RGB projection",
    Decoder.CHANNELS: "raw latent channels",
}


@dataclass(frozen=True)
class Drawing:
    """How the views of one run are drawn: `model` is None for pixel-space runs (nothing to decode)."""

    model: Denoiser | None = None
    decoder: Decoder = FRAME_DECODER

    @property
    def latent(self) -> bool:
        return self.model is not None

    def pixels(self, batch: torch.Tensor, half_range: float) -> torch.Tensor:
        """A view of the whole batch as pictures in [−1, 1]: [B, C, H, W] (or points [B, 2], scaled alike)."""
        if not self.latent or batch.ndim != 4:
            return batch.float() / half_range
        return self.model.decode(batch.float(), self.used)

    @property
    def used(self) -> Decoder:
        """The decoder that actually draws: linear falls back to the raw channels for a family without a matrix."""
        if self.decoder is Decoder.LINEAR and not has_linear(self.model):
            return Decoder.CHANNELS
        return self.decoder

    @property
    def name(self) -> str:
        return DECODER_NAMES[self.used] if self.latent else "pixels as they are"


def has_linear(model: Denoiser) -> bool:
    """Whether the model's family has a latent → RGB matrix."""
    return getattr(model, "family", None) in LATENT_RGB


def drawing_of(ref: str | None, decoder: str | Decoder = FRAME_DECODER) -> Drawing:
    """How a run of the model `ref` is drawn: pixel-space models (bundled, exact, pixel catalogue entries) as they
    are, without loading anything; a latent model (loaded already by its run, shared) through `decoder`."""
    kind = Decoder.parse(decoder)
    if not ref or not takes_conditioning(ref):
        return Drawing()
    model = load_model(ref)
    return Drawing(model if hasattr(model, "decode") else None, kind)


PIXELS = Drawing()  # a pixel-space run: views drawn as they are
