"""The digits classifier behind the quality metrics: a small CNN trained on the real training digits.

Its top-class confidence scores samples, and its penultimate features (128-d) are the feature space of the
Fréchet distance (`tools.metrics`). Shipped in `pretrained/digits-classifier/` (safetensors);
`python -m tools.quality train-classifier` reproduces it.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from explorer.data import digits
from explorer.models.refs import PRETRAINED_DIR

CLASSIFIER_NAME = "digits-classifier"


class DigitClassifier(ModelMixin, ConfigMixin):
    """A small CNN for 16×16 digits in [-1, 1]: [B, 1, 16, 16] → logits [B, 10]; `features` gives [B, 128]."""

    @register_to_config
    def __init__(self, channels: tuple[int, int] = (32, 64), feature_dim: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc = nn.Linear(c2 * 4 * 4, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features [B, feature_dim] of images [B, 1, 16, 16]."""
        h = F.max_pool2d(F.relu(self.conv1(images)), 2)  # [B, c1, 8, 8]
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # [B, c2, 4, 4]
        return F.relu(self.fc(h.flatten(1)))  # [B, feature_dim]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [B, num_classes]."""
        return self.head(self.features(images))


def _shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random translations by up to one pixel (background −1 fills in): [B, 1, 16, 16] → same."""
    padded = F.pad(images, (1, 1, 1, 1), value=-1.0)  # [B, 1, 18, 18]
    dy, dx = torch.randint(0, 3, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + 16, dx : dx + 16]


def train_classifier(epochs: int = 20, seed: int = 0, batch_size: int = 128, lr: float = 2e-3) -> DigitClassifier:
    """Train the metric classifier on the 4,000 training digits (seeded; ±1-pixel shifts as augmentation)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train = digits("train")
    model = DigitClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(train.labels) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(train.labels), generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            images = _shift(train.images[index], generator)
            loss = F.cross_entropy(model(images), train.labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"classifier epoch {epoch + 1}/{epochs}  loss {loss.item():.4f}", flush=True)
    return model.eval()


def load_classifier(pretrained: Path = PRETRAINED_DIR) -> DigitClassifier:
    """The shipped metric classifier (safetensors only)."""
    return DigitClassifier.from_pretrained(pretrained / CLASSIFIER_NAME, use_safetensors=True).eval()
