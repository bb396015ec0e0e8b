"""Benchmark the sampler: overhead against diffusers' DDIMPipeline, bundled-model runs, teacher forcing, latents.

    python scripts/bench_sampler.py [--repeats 5] [--skip-bundled] [--skip-overhead] [--accelerator-rows]
                                    [--latent] [--latent-only] [--latent-steps 3] [--latent-repeats 3]

--latent adds rows for a latent model (random weights, SD 1.5-sized): recording overhead against diffusers'
StableDiffusionPipeline on the SAME UNet2DConditionModel (64×64 latents, batch 1, guidance 1 and 7.5, DDIM and the
checkpoint's own PNDM), and the cost per frame of the three decoders (exact VAE, TAESD-sized AutoencoderTiny,
linear latent→RGB).

On CUDA it adds eager vs compiled and fp32 vs bf16 rows (batch 1 and 16) against the same diffusers pipeline;
--accelerator-rows forces them on any device.

Prints a Markdown table. Timings are wall-clock medians of interleaved runs on this machine; nothing here
is asserted by the tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import explorer  # noqa: E402
from explorer.data import digits  # noqa: E402

CIFAR_CONFIG = ROOT / "tests" / "data" / "ddpm-cifar10-32.unet-config.json"
CIFAR_SCHEDULER = ROOT / "tests" / "data" / "ddpm-cifar10-32.scheduler-config.json"
MIB = 2**20


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cifar_sized_folder(folder: Path) -> Path:
    """A random-weight UNet with google/ddpm-cifar10-32's published config, saved as a checkpoint folder."""
    config = {k: v for k, v in json.loads(CIFAR_CONFIG.read_text()).items() if not k.startswith("_")}
    torch.manual_seed(0)
    UNet2DModel(**config).save_pretrained(folder, safe_serialization=True)
    (folder / "scheduler_config.json").write_text(CIFAR_SCHEDULER.read_text())
    return folder


def overhead_rows(repeats: int, device: str) -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = cifar_sized_folder(Path(tmp) / "cifar")
        denoiser = explorer.load(str(folder), allow_local=True, device=device)
        scheduler = DDIMScheduler.from_pretrained(folder)
        pipe = DDIMPipeline(unet=denoiser.module, scheduler=scheduler).to(device)
        pipe.set_progress_bar_config(disable=True)

        def ours() -> None:
            explorer.sample(denoiser, sampler="ddim", num_inference_steps=20, batch_size=4, clip_sample=False)

        def theirs() -> None:
            pipe(batch_size=4, num_inference_steps=20, eta=0.0, generator=torch.Generator().manual_seed(0))

        ours(), theirs()  # warm-up
        pairs = [(timed(ours), timed(theirs)) for _ in range(repeats)]
    ratios = [a / b for a, b in pairs]
    return [
        (
            "explorer.sample, DDIM 20 steps, batch 4 (cifar10-sized UNet)",
            f"{statistics.median(p[0] for p in pairs):.2f} s",
            "",
        ),
        ("diffusers DDIMPipeline, same UNet and settings", f"{statistics.median(p[1] for p in pairs):.2f} s", ""),
        (
            "median ratio explorer / diffusers (target ≤ 1.05)",
            f"{statistics.median(ratios):.3f}",
            f"runs: {', '.join(f'{r:.3f}' for r in ratios)}",
        ),
    ]


def bundled_rows(device: str) -> list[tuple[str, str, str]]:
    rows = []
    for name, batch in (("digits-eps", 16), ("moons-eps", 2000)):
        denoiser = explorer.load(name, device=device)
        start = time.perf_counter()
        run = explorer.sample(denoiser, num_inference_steps=1000, batch_size=batch, seed=0)
        seconds = time.perf_counter() - start
        compact = run.compact()
        rows.append(
            (
                f"{name}: 1000-step DDPM, batch {batch}",
                f"{seconds:.1f} s",
                f"kept: {run.nbytes / MIB:.1f} MiB full, {compact.nbytes / MIB:.1f} MiB compact"
                + (" (budget for digits at batch 16: 64 MiB)" if name.startswith("digits") else ""),
            )
        )
    models = [explorer.load(n, device=device) for n in ("digits-eps", "digits-x0", "digits-v")]
    x0 = digits("held_out").images[:16]
    start = time.perf_counter()
    explorer.teacher_force(models, x0=x0, timesteps=list(range(999, -1, -1)))
    rows.append(
        ("teacher forcing, three digits models × 1000 steps × 16 digits", f"{time.perf_counter() - start:.1f} s", "")
    )
    return rows


def _synced(fn: Callable[[], object], device: str) -> Callable[[], object]:
    """`fn`, then wait for the device: CUDA work is asynchronous, and a timing must include all of it."""

    def run() -> object:
        out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return run


@torch.no_grad()
def ddim_loop(unet: UNet2DModel, scheduler: DDIMScheduler, batch: int, steps: int) -> torch.Tensor:
    """DDIMPipeline's denoising loop, without its final conversion to numpy (which refuses bfloat16)."""
    size = unet.config.sample_size
    image = torch.randn(
        (batch, unet.config.in_channels, size, size), generator=torch.Generator().manual_seed(0), dtype=unet.dtype
    ).to(unet.device)
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        image = scheduler.step(unet(image, t).sample, t, image, eta=0.0).prev_sample
    return image


def accelerator_rows(repeats: int, device: str, steps: int = 20) -> list[tuple[str, str, str]]:
    """Eager vs compiled, fp32 vs bf16, batch 1 and 16: explorer.sample against diffusers' DDIM loop, same UNet.

    Compiled means `torch.compile` of the UNet's forward (both sides share the module, so both get it).
    """
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = cifar_sized_folder(Path(tmp) / "cifar")
        for dtype in ("float32", "bfloat16"):
            for compiled in (False, True):
                explorer.clear_cache()
                denoiser = explorer.load(str(folder), allow_local=True, device=device, dtype=dtype)
                if compiled:
                    denoiser.module.forward = torch.compile(denoiser.module.forward)
                scheduler = DDIMScheduler.from_pretrained(folder)
                for batch in (1, 16):
                    ours = _synced(
                        lambda b=batch, d=denoiser: explorer.sample(
                            d, sampler="ddim", num_inference_steps=steps, batch_size=b, clip_sample=False
                        ),
                        device,
                    )
                    theirs = _synced(lambda b=batch, u=denoiser.module, s=scheduler: ddim_loop(u, s, b, steps), device)
                    ours(), theirs()  # warm-up (and compilation)
                    pairs = [(timed(ours), timed(theirs)) for _ in range(repeats)]
                    mine = statistics.median(a for a, _ in pairs)
                    ratio = statistics.median(a / b for a, b in pairs)
                    label = f"{device} {dtype} {'compiled' if compiled else 'eager'}, batch {batch}"
                    rows.append(
                        (
                            f"{label}: explorer.sample vs diffusers' DDIM loop, {steps} steps",
                            f"{mine * 1000:.0f} ms",
                            f"ratio {ratio:.3f}; diffusers {statistics.median(b for _, b in pairs) * 1000:.0f} ms",
                        )
                    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-bundled", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument(
        "--accelerator-rows", action="store_true", help="eager/compiled × fp32/bf16 rows even without CUDA (slow)"
    )
    parser.add_argument("--accelerator-steps", type=int, default=20, help="DDIM steps of those rows")
    parser.add_argument("--latent", action="store_true", help="add the latent-model rows (SD-sized, slow on a CPU)")
    parser.add_argument("--latent-only", action="store_true", help="only the latent-model rows")
    parser.add_argument("--latent-steps", type=int, default=3)
    parser.add_argument("--latent-repeats", type=int, default=3)
    args = parser.parse_args()
    device = str(explorer.pick_device())
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}\n")
    print("| measurement | value | notes |\n|---|---|---|", flush=True)
    groups = [] if args.skip_overhead or args.latent_only else [lambda: overhead_rows(args.repeats, device)]
    if not (args.skip_bundled or args.latent_only):
        groups.append(lambda: bundled_rows(device))
    if args.latent or args.latent_only:
        from bench_latent import latent_rows  # diffusers. SD pipeline only when asked

        groups.append(lambda: latent_rows(args.latent_repeats, device, args.latent_steps))
    if args.latent_only:
        pass
    elif device == "cuda" or args.accelerator_rows:
        groups.append(lambda: accelerator_rows(args.repeats, device, args.accelerator_steps))
    else:
        groups.append(lambda: [("CUDA: eager vs compiled, fp32 vs bf16", "not measured", "no CUDA device here")])
    for group in groups:
        for row in group():
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
