"""The project's small denoiser for 2-D point clouds: an MLP with a sinusoidal time embedding.

    input   x_t       [B, 2]   a noisy point
            timestep  [B] or int, diffusers' 0-based timestep
    output            [B, 2]   ε, x₀ or v, whichever the model was trained to predict

It is a diffusers model (`ModelMixin`, `ConfigMixin`), so `save_pretrained(folder, safe_serialization=True)`
writes `config.json` and `diffusion_pytorch_model.safetensors`, and `from_pretrained(folder,
use_safetensors=True)` reads them back. Unlike `UNet2DModel`, `forward` returns a plain tensor.
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from explorer.diffusion.tensors import TimestepLike


def timestep_embedding(timestep: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of 0-based timesteps ([B] → [B, dim]): cos then sin at geometric frequencies."""
    if dim % 2:
        raise ValueError(f"time embedding dim must be even; got {dim}")
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timestep.device) / half
    angles = timestep.float()[:, None] * exponent.exp()[None, :]  # [B, half]
    return torch.cat([angles.cos(), angles.sin()], dim=1)  # [B, dim]


class PointDenoiserMLP(ModelMixin, ConfigMixin):
    """An MLP denoiser for 2-D points: [x_t, embed(timestep)] → hidden layers (SiLU) → [B, 2]."""

    @register_to_config
    def __init__(
        self,
        sample_dim: int = 2,
        hidden_dim: int = 256,
        num_hidden_layers: int = 3,
        time_embed_dim: int = 64,
        num_train_timesteps: int = 1000,
    ) -> None:
        super().__init__()
        if num_hidden_layers < 1:
            raise ValueError(f"num_hidden_layers must be at least 1; got {num_hidden_layers}")
        self.time_mlp = nn.Sequential(
            nn.Linear(time_embed_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim)
        )
        self.input = nn.Linear(sample_dim, hidden_dim)
        self.hidden = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(num_hidden_layers))
        self.output = nn.Linear(hidden_dim, sample_dim)
        self.act = nn.SiLU()

    def forward(self, x_t: torch.Tensor, timestep: TimestepLike) -> torch.Tensor:
        """x_t [B, sample_dim], timestep int or [B] (0-based) → prediction [B, sample_dim]."""
        if x_t.ndim != 2 or x_t.shape[1] != self.config.sample_dim:
            raise ValueError(f"x_t must have shape [B, {self.config.sample_dim}]; got {tuple(x_t.shape)}")
        steps = torch.as_tensor(timestep, device=x_t.device)
        if steps.ndim == 0:
            steps = steps.expand(x_t.shape[0])  # [B]
        time = self.time_mlp(timestep_embedding(steps, self.config.time_embed_dim).to(x_t.dtype))  # [B, H]
        h = self.input(x_t) + time  # [B, H]
        for layer in self.hidden:
            h = layer(self.act(h)) + time
        return self.output(self.act(h))  # [B, sample_dim]
