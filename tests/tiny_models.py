"""Tiny random-weight denoisers built in code (no files, no network) for sampler and teacher tests."""

from __future__ import annotations

import torch
from diffusers import UNet2DModel

from explorer import Denoiser, DenoiserOutput, Prediction, Schedule, VarianceType


class TinyUNetDenoiser(Denoiser):
    """A random diffusers UNet2DModel on 1×8×8 samples; `learned=True` doubles its output channels."""

    def __init__(
        self,
        prediction: str = "epsilon",
        *,
        schedule: Schedule | None = None,
        seed: int = 0,
        learned: bool = False,
        clip_sample: bool = False,
        variance_type: str = "fixed_small",
    ) -> None:
        torch.manual_seed(seed)
        self.unet = UNet2DModel(
            sample_size=8,
            in_channels=1,
            out_channels=2 if learned else 1,
            block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            layers_per_block=1,
            norm_num_groups=4,
        ).eval()
        self.name = f"tiny-{prediction}"
        self.prediction = Prediction.parse(prediction)
        self.schedule = schedule or Schedule.from_name("linear", 1000)
        self.sample_shape = (1, 8, 8)
        self.clip_sample = clip_sample
        self.learned_variance = learned
        self.variance_type = VarianceType.LEARNED_RANGE if learned else VarianceType.parse(variance_type)
        self.calls = 0

    @torch.inference_mode()
    def predict(self, x_t: torch.Tensor, timestep) -> DenoiserOutput:
        self.calls += 1
        out = self.unet(x_t.float(), timestep).sample * 3.0  # scale up so clipping matters
        if self.learned_variance:
            return DenoiserOutput(out[:, :1], out[:, 1:].tanh())
        return DenoiserOutput(out)
