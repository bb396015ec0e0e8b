"""Train the bundled denoisers: `python -m tools.train --data digits --prediction epsilon --steps N ...`.

Training objective (DDPM, Ho et al. 2020, Algorithm 1, with the target chosen by the prediction type):

    timestep ~ U{0, …, T−1}   (0-based; paper t = timestep + 1)
    ε ~ N(0, I),  x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε        `explorer.diffusion.posterior.q_sample`
    target = ε | x₀ | v = √ᾱ_t ε − √(1−ᾱ_t) x₀ | u = ε − x₀ (flow)   `parameterization.v_from_x0_eps`
    A flow model (`--prediction flow_prediction`) trains on the VP schedule of equal SNR to σ = t/T: its x_t is the
    flow point x_σ = (1−σ) x₀ + σ ε times √ᾱ + √(1−ᾱ) (x_σ = x_t/(√ᾱ + √(1−ᾱ))), so rectified flow's path and
    velocity, with the VP machinery (samplers, posterior, teacher forcing) unchanged.
    loss = mean w_t ‖model(x_t, timestep) − target‖²  MSE on the model's own target
    w_t = 1 (`--loss-weighting uniform`, the default), or min-SNR-γ (Hang et al. 2023): the weight that turns
          each target's MSE into min(SNR_t, γ) · ‖x₀ − x̂₀‖², i.e. min(SNR, γ) for x₀, min(SNR, γ)/SNR for ε,
          min(SNR, γ)/(SNR + 1) for v. The bundled 2-D x₀-prediction models use it: with plain MSE on x₀ the
          low-noise steps carry little weight; moons-x0 scored an energy ratio of 12 (limit 3).

AdamW with a linear warm-up to a constant learning rate, gradient norm clipped to 1, and an exponential
moving average (EMA) of the weights, which is what gets saved. Because the learning rate is constant after
warm-up, a run stopped early by `--max-minutes` after N steps is the same as a run with `--steps N`
(not so with `--lr-decay cosine`, which decays the rate to 0 at `--steps`).

Twin models (the Memorization view): `--train-size N --subset a|b` trains on N examples of one of two disjoint
halves (`explorer.data.twin_half`) instead of the full pool. Twins share `--seed`, hence the same initial weights
and the same minibatch indices, noise and timesteps: only the data differ. `--hidden-dim`, `--hidden-layers` and
`--time-embed-dim` size the 2-D MLP (default: the bundled models' 128, 3, 64).

A run writes, into `--out`: the EMA model (`config.json`, `diffusion_pytorch_model.safetensors`), the
DDPMScheduler config it was trained with (`scheduler_config.json`), `training.json` (the recipe, steps,
wall time, machine and the command) and a `README.md` model card. It saves every `--checkpoint-minutes`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch
from torch import nn

from explorer.data import Dataset, Half, max_twin_size, training_data
from explorer.diffusion.parameterization import Prediction, v_from_x0_eps
from explorer.diffusion.posterior import q_sample
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.tensors import gather
from explorer.models.device import pick_device
from explorer.models.mlp import PointDenoiserMLP
from tools.model_card import reproduce_command, write_card

NUM_TRAIN_TIMESTEPS = 1000
BETA_SCHEDULE = "linear"
BETA_START = 1e-4
BETA_END = 0.02
MAX_STEPS = 10_000_000
MAX_BATCH_SIZE = 65_536

# The digits UNet: small and fast enough for 1,000 samples × 1,000 DDPM steps on a CPU.
DIGITS_UNET_CONFIG = {
    "sample_size": 16,
    "in_channels": 1,
    "out_channels": 1,
    "block_out_channels": (8, 16, 32),
    "layers_per_block": 1,
    "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "UpBlock2D", "UpBlock2D"),
    "norm_num_groups": 4,
}
POINT_MLP_CONFIG = {"sample_dim": 2, "hidden_dim": 128, "num_hidden_layers": 3, "time_embed_dim": 64}


class LossWeighting(StrEnum):
    """How the per-timestep MSE is weighted."""

    UNIFORM = "uniform"
    MIN_SNR = "min_snr"


class LrDecay(StrEnum):
    """The learning rate after warm-up: constant, or a cosine from lr down to 0 at the last step."""

    CONSTANT = "constant"
    COSINE = "cosine"


@dataclass(frozen=True)
class TrainConfig:
    """One training run's recipe (everything needed to reproduce it)."""

    data: Dataset
    prediction: Prediction
    steps: int
    seed: int
    out: str
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 200
    ema_decay: float = 0.999
    device: str | None = None
    max_minutes: float | None = None
    checkpoint_minutes: float = 5.0
    log_every: int = 100
    threads: int | None = None
    loss_weighting: LossWeighting = LossWeighting.UNIFORM
    snr_gamma: float = 5.0
    lr_decay: LrDecay = LrDecay.CONSTANT
    train_size: int | None = None  # None: the full pool; N: N examples of twin half `subset`
    subset: Half = Half.A
    hidden_dim: int = POINT_MLP_CONFIG["hidden_dim"]  # the 2-D MLP's width, depth and time embedding
    hidden_layers: int = POINT_MLP_CONFIG["num_hidden_layers"]
    time_embed_dim: int = POINT_MLP_CONFIG["time_embed_dim"]


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports."""

    steps: int  # optimiser steps taken
    wall_seconds: float
    first_loss: float  # mean loss over the first logging window
    last_loss: float  # mean loss over the last logging window
    out: Path


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def training_schedule(prediction: Prediction = Prediction.EPSILON) -> Schedule:
    """The schedule every bundled model shares: linear β from 1e-4 to 0.02 over T = 1000; a flow model's is the VP
    schedule of equal SNR to the flow grid σ = t/T (t = 1..T), so x_t = √ᾱ x₀ + √(1−ᾱ) ε is x_σ·(√ᾱ + √(1−ᾱ))."""
    if prediction is Prediction.FLOW:
        return Schedule.from_diffusers_config({"_class_name": FLOW_SCHEDULER, **FLOW_SCHEDULER_CONFIG})
    return Schedule.from_name(BETA_SCHEDULE, NUM_TRAIN_TIMESTEPS, beta_start=BETA_START, beta_end=BETA_END)


FLOW_SCHEDULER = "FlowMatchEulerDiscreteScheduler"
FLOW_SCHEDULER_CONFIG = {"num_train_timesteps": NUM_TRAIN_TIMESTEPS, "shift": 1.0}


def scheduler_config(data: Dataset, prediction: Prediction) -> dict:
    """The scheduler settings saved beside each model: DDPMScheduler's (clipping to [-1, 1] for digits only), or a
    flow model's FlowMatchEulerDiscreteScheduler (σ = t/T, no shift)."""
    if prediction is Prediction.FLOW:
        return dict(FLOW_SCHEDULER_CONFIG)
    return {
        "num_train_timesteps": NUM_TRAIN_TIMESTEPS,
        "beta_schedule": BETA_SCHEDULE,
        "beta_start": BETA_START,
        "beta_end": BETA_END,
        "prediction_type": prediction.value,
        "variance_type": "fixed_small",
        "clip_sample": data is Dataset.DIGITS,
        "clip_sample_range": 1.0,
    }


def build_model(data: Dataset, config: TrainConfig | None = None) -> nn.Module:
    """A freshly initialised denoiser for `data` (a UNet2DModel for digits, the point MLP otherwise, sized by
    `config`'s hidden_dim, hidden_layers and time_embed_dim when given)."""
    if data is Dataset.DIGITS:
        from diffusers import UNet2DModel

        return UNet2DModel(**DIGITS_UNET_CONFIG)
    mlp = dict(POINT_MLP_CONFIG)
    if config is not None:
        mlp.update(
            hidden_dim=config.hidden_dim, num_hidden_layers=config.hidden_layers, time_embed_dim=config.time_embed_dim
        )
    return PointDenoiserMLP(**mlp, num_train_timesteps=NUM_TRAIN_TIMESTEPS)


def model_output(model: nn.Module, x_t: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    """Call either kind of model and return a plain tensor shaped like x_t."""
    out = model(x_t, timestep)
    return out.sample if hasattr(out, "sample") else out


def training_target(
    prediction: Prediction, schedule: Schedule, x0: torch.Tensor, noise: torch.Tensor, timestep: torch.Tensor
) -> torch.Tensor:
    """What the model should output at x_t made from (x0, noise, timestep): ε, x₀, v or the flow velocity ε − x₀.
    Shapes [B, ...]."""
    if prediction is Prediction.EPSILON:
        return noise
    if prediction is Prediction.SAMPLE:
        return x0
    if prediction is Prediction.FLOW:
        return noise - x0
    alpha_cumprod = gather(schedule.alphas_cumprod, timestep, x0).flatten()  # [B]
    return v_from_x0_eps(x0, noise, alpha_cumprod)


def loss_weights(
    weighting: LossWeighting, prediction: Prediction, schedule: Schedule, timestep: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Per-sample loss weights [B] for 0-based timesteps [B] (all ones for uniform weighting)."""
    if weighting is LossWeighting.UNIFORM:
        return torch.ones(timestep.shape, dtype=torch.float32, device=timestep.device)
    snr = torch.from_numpy(schedule.snr[timestep.cpu().numpy()]).to(timestep.device)  # [B] float64
    clipped = snr.clamp(max=gamma)
    if prediction is Prediction.SAMPLE:
        weight = clipped
    elif prediction is Prediction.EPSILON:
        weight = clipped / snr
    elif prediction is Prediction.FLOW:  # ‖u − û‖² = ‖x₀ − x̂₀‖²/σ², σ = √(1−ᾱ)/(√ᾱ + √(1−ᾱ))
        a = torch.from_numpy(schedule.alphas_cumprod[timestep.cpu().numpy()]).to(timestep.device)
        weight = clipped * ((1 - a).sqrt() / (a.sqrt() + (1 - a).sqrt())) ** 2
    else:
        weight = clipped / (snr + 1.0)
    return weight.float()


def weighted_mse(output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """mean_b weights[b] · mean_i (output − target)²[b, i]; output, target [B, ...], weights [B]."""
    per_sample = (output - target).pow(2).flatten(1).mean(dim=1)  # [B]
    return (weights * per_sample).mean()


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for ema_p, p in zip(ema.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p, 1.0 - decay)


def machine_description(device: torch.device) -> str:
    """A short description of where a run happened, for the model card."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    threads = torch.get_num_threads()
    return f"CPU ({cpu_model()}, {os.cpu_count()} cores shared, {threads} torch thread(s))"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def save_checkpoint(ema: nn.Module, config: TrainConfig, *, steps: int, wall_seconds: float, device: torch.device):
    """Write the EMA model, scheduler config, training.json and a model card into `config.out`."""
    import diffusers

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    ema.save_pretrained(out, safe_serialization=True)
    kind = FLOW_SCHEDULER if config.prediction is Prediction.FLOW else "DDPMScheduler"
    getattr(diffusers, kind)(**scheduler_config(config.data, config.prediction)).save_pretrained(out)
    recipe = {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(config).items()}
    record = {
        "recipe": recipe,
        "steps": steps,
        "wall_seconds": round(wall_seconds, 1),
        "machine": machine_description(device),
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in ema.parameters()),
        "command": reproduce_command(recipe, steps),
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    try:  # the card is a convenience here: the quality script rewrites it; never lose a checkpoint over it
        write_card(out)
    except Exception as error:
        print(f"warning: model card not written: {error!r}", flush=True)


def learning_rate_factor(config: TrainConfig, step: int) -> float:
    """The learning rate of optimiser step `step` (0-based) as a fraction of lr: linear warm-up, then constant or a
    cosine to 0 at config.steps."""
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    if config.lr_decay is LrDecay.CONSTANT or step < config.warmup_steps:
        return warm
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train(config: TrainConfig) -> TrainResult:
    """Run one training job and save the EMA weights; logs step, loss and steps/s to stdout."""
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    device = pick_device(config.device)
    schedule = training_schedule(config.prediction)
    pool = training_data(config.data, config.seed, config.train_size, config.subset).to(device)
    model = build_model(config.data, config).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(config, step))
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    count = sum(p.numel() for p in model.parameters())
    print(f"{config.data.value}/{config.prediction.value}: {count:,} parameters on {device}", flush=True)

    start = last_save = window_start = time.perf_counter()
    window: list[float] = []
    first_loss = last_loss = math.nan
    step = 0
    while step < config.steps:
        index = torch.randint(0, len(pool), (config.batch_size,), generator=generator)
        x0 = pool[index.to(device)]  # [B, ...]
        noise = torch.randn(x0.shape, generator=generator).to(device)
        timestep = torch.randint(0, NUM_TRAIN_TIMESTEPS, (config.batch_size,), generator=generator).to(device)
        x_t = q_sample(schedule, x0, timestep, noise)
        target = training_target(config.prediction, schedule, x0, noise, timestep)
        weights = loss_weights(config.loss_weighting, config.prediction, schedule, timestep, config.snr_gamma)
        loss = weighted_mse(model_output(model, x_t, timestep), target, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        warmup.step()
        step += 1
        # EMA with a warm-up of its own, so early checkpoints are not dominated by the initial weights.
        _ema_update(ema, model, min(config.ema_decay, (1 + step) / (10 + step)))
        window.append(loss.item())

        now = time.perf_counter()
        if step % config.log_every == 0 or step == config.steps:
            mean_loss = float(np.mean(window))
            first_loss = mean_loss if math.isnan(first_loss) else first_loss
            last_loss = mean_loss
            rate = len(window) / max(now - window_start, 1e-9)
            print(f"step {step:>7d}  loss {mean_loss:.5f}  {rate:.2f} steps/s  elapsed {now - start:.0f}s", flush=True)
            window, window_start = [], now
        out_of_time = config.max_minutes is not None and now - start >= 60.0 * config.max_minutes
        if out_of_time:
            print(f"stopping at step {step}: --max-minutes {config.max_minutes} reached", flush=True)
            break
        if now - last_save >= 60.0 * config.checkpoint_minutes:
            save_checkpoint(ema, config, steps=step, wall_seconds=now - start, device=device)
            last_save = now
            print(f"checkpoint at step {step} -> {config.out}", flush=True)

    if window:
        last_loss = float(np.mean(window))
        first_loss = last_loss if math.isnan(first_loss) else first_loss
    wall = time.perf_counter() - start
    save_checkpoint(ema, config, steps=step, wall_seconds=wall, device=device)
    print(f"done: {step} steps in {wall:.0f}s -> {config.out}", flush=True)
    return TrainResult(steps=step, wall_seconds=wall, first_loss=first_loss, last_loss=last_loss, out=Path(config.out))


def _bounded_int(name: str, low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer in [{low}, {high}]; got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be an integer in [{low}, {high}]; got {value}")
        return value

    return parse


def _positive_float(name: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number > 0; got {text!r}")
        return value

    return parse


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse the command line into a TrainConfig; bad values exit with a message naming the field and range."""
    parser = argparse.ArgumentParser(prog="python -m tools.train", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, choices=[m.value for m in Dataset])
    parser.add_argument("--prediction", required=True, choices=[m.value for m in Prediction])
    parser.add_argument("--steps", required=True, type=_bounded_int("--steps", 1, MAX_STEPS))
    parser.add_argument("--seed", default=0, type=_bounded_int("--seed", 0, 2**31 - 1))
    parser.add_argument("--out", required=True, help="output folder, e.g. pretrained/digits-eps")
    parser.add_argument("--batch-size", default=128, type=_bounded_int("--batch-size", 1, MAX_BATCH_SIZE))
    parser.add_argument("--lr", default=1e-3, type=_positive_float("--lr"))
    parser.add_argument("--warmup-steps", default=200, type=_bounded_int("--warmup-steps", 0, MAX_STEPS))
    parser.add_argument("--ema-decay", default=0.999, type=float)
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--max-minutes", default=None, type=_positive_float("--max-minutes"))
    parser.add_argument("--checkpoint-minutes", default=5.0, type=_positive_float("--checkpoint-minutes"))
    parser.add_argument("--log-every", default=100, type=_bounded_int("--log-every", 1, MAX_STEPS))
    parser.add_argument("--threads", default=None, type=_bounded_int("--threads", 1, 1024))
    parser.add_argument("--loss-weighting", default="uniform", choices=[m.value for m in LossWeighting])
    parser.add_argument("--snr-gamma", default=5.0, type=_positive_float("--snr-gamma"))
    parser.add_argument("--lr-decay", default="constant", choices=[m.value for m in LrDecay])
    twins = parser.add_argument_group("twin models (Memorization view)")
    twins.add_argument("--train-size", default=None, help="train on N examples of one twin half (default: full pool)")
    twins.add_argument("--subset", default="a", choices=[m.value for m in Half], help="which twin half")
    twins.add_argument(
        "--hidden-dim", default=POINT_MLP_CONFIG["hidden_dim"], type=_bounded_int("--hidden-dim", 2, 4096)
    )
    twins.add_argument(
        "--hidden-layers", default=POINT_MLP_CONFIG["num_hidden_layers"], type=_bounded_int("--hidden-layers", 1, 64)
    )
    twins.add_argument(
        "--time-embed-dim", default=POINT_MLP_CONFIG["time_embed_dim"], type=_bounded_int("--time-embed-dim", 2, 4096)
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.ema_decay < 1.0:
        parser.error(f"--ema-decay must be in [0, 1); got {args.ema_decay}")
    values = vars(args)
    values["data"], values["prediction"] = Dataset(args.data), Prediction(args.prediction)
    values["loss_weighting"] = LossWeighting(args.loss_weighting)
    values["lr_decay"], values["subset"] = LrDecay(args.lr_decay), Half(args.subset)
    if args.train_size is not None:  # its range depends on --data: 2-D halves hold more examples than digits'
        try:
            values["train_size"] = _bounded_int("--train-size", 1, max_twin_size(values["data"]))(args.train_size)
        except argparse.ArgumentTypeError as error:
            parser.error(str(error))
    if args.time_embed_dim % 2:
        parser.error(f"--time-embed-dim must be even; got {args.time_embed_dim}")
    return TrainConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
