"""What a run costs: how long it will take on this machine (measured before it starts), the ZeroGPU slot sized from
that, and whether its record fits a session's byte budget (`check_fits`).

One forward pass of the bound model at batch 1 is timed once per (model, sample shape, guidance, device) and kept
until a run of it finishes, whose measured seconds per sample-pass then replace it (`record_run_time`);
a run of S steps at batch B then costs about S · B · (seconds per sample-pass), doubled by guidance (the
conditional and unconditional halves run as one batch of 2B). On a CPU the pass time grows about linearly with the
batch; on a GPU it does not, so the figure is an upper bound there.
"""

from __future__ import annotations

import math
import threading
import time

import torch

from explorer.diffusion.denoiser import Denoiser
from explorer.diffusion.settings import SamplerSettings
from explorer.diffusion.trajectory import compact_nbytes
from explorer.models.latent import LatentDenoiser
from ui import state
from ui.models import record_run, record_speed, takes_conditioning
from ui.state import MIB
from ui.values import RunValues

LONG_RUN_SECONDS = 20.0  # a run estimated longer than this says so before it starts
GPU_SECONDS = (30, 300)  # the ZeroGPU slot asked for, at least and at most
WARM_UP_RETIME = 0.5  # s: a first pass quicker than this is timed once more (the second is the warm one)
_MEASURED: dict[tuple, float] = {}
_LOCK = threading.Lock()


def is_guided(denoiser: Denoiser) -> bool:
    """Whether a run of this (bound) model records the conditional and unconditional x̂₀ too: classifier-free
    guidance w > 1 of a family that runs it as a second pass (not FLUX dev's embedded guidance)."""
    if not isinstance(denoiser, LatentDenoiser) or not denoiser.kind.conditional:
        return False
    return denoiser.kind.classifier_free and denoiser.guidance_scale > 1.0


def check_fits(steps: int, batch: int, sample_shape: tuple[int, ...], guided: bool = False) -> None:
    """Refuse, before it starts, a run whose record would not fit a session's budget; say what would fit."""
    budget = state.STORE.max_bytes_per_session
    needs = compact_nbytes(steps, batch, sample_shape, guided)
    if needs <= budget:
        return
    per_step = compact_nbytes(1, batch, sample_shape, guided)
    fitting_steps = max(0, budget // per_step - 1)
    fitting_batch = next(
        (b for b in range(batch, 0, -1) if compact_nbytes(steps, b, sample_shape, guided) <= budget), 0
    )
    options = [f"at most {fitting_steps} steps at batch {batch}"] if fitting_steps else []
    options += [f"batch {fitting_batch} at {steps} steps"] if fitting_batch else []
    raise ValueError(
        f"this run would keep {needs / MIB:.1f} MiB but a session may keep at most {budget / MIB:.0f} MiB: "
        + (" or ".join(options) if options else "use fewer steps and a smaller batch")
        + " would fit"
    )


def _key(denoiser: Denoiser) -> tuple:
    """What a pass's cost depends on: the shared modules (not the bound prompt), the shape, guidance, device."""
    modules = getattr(denoiser, "parts", None) or getattr(denoiser, "module", None) or denoiser
    guided = is_guided(denoiser)
    return (id(modules), tuple(denoiser.sample_shape), guided, str(denoiser.device), str(denoiser.dtype))


def seconds_per_pass(denoiser: Denoiser) -> float:
    """Seconds for one model call on one sample (guided calls include their unconditional half), measured once."""
    key = _key(denoiser)
    with _LOCK:
        if key in _MEASURED:
            return _MEASURED[key]
    x_t = torch.zeros((1, *denoiser.sample_shape), dtype=denoiser.dtype, device=denoiser.device)
    timestep = denoiser.schedule.num_train_timesteps // 2

    def timed() -> float:
        start = time.perf_counter()
        denoiser.predict(x_t, timestep)
        if denoiser.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    with torch.no_grad():
        seconds = timed()  # the first call pays for warm-up (allocations, kernels): a cheap model is timed again
        if seconds < WARM_UP_RETIME:
            seconds = min(seconds, timed())
    with _LOCK:
        _MEASURED[key] = seconds
    record_speed(denoiser.name, str(denoiser.device), seconds)
    return seconds


def record_run_time(denoiser: Denoiser, settings: SamplerSettings, seconds: float, estimate: float) -> None:
    """Keep what a finished run measured: its seconds per sample-pass replace the single timed pass (so the next
    estimate comes from the latest run, warm-up excluded), and the model box says how long it took against
    `estimate`, the seconds this run was estimated at before it started."""
    per_pass = seconds / (settings.num_inference_steps * settings.batch_size)
    with _LOCK:
        _MEASURED[_key(denoiser)] = per_pass
    device = str(denoiser.device)
    record_speed(denoiser.name, device, per_pass)
    record_run(denoiser.name, device, seconds, estimate, settings.num_inference_steps, settings.batch_size)


def run_seconds(denoiser: Denoiser, settings: SamplerSettings) -> float:
    """The estimated wall time of a run: steps × batch × seconds per sample-pass (see the module docstring)."""
    return settings.num_inference_steps * settings.batch_size * seconds_per_pass(denoiser)


def long_run_note(denoiser: Denoiser, settings: SamplerSettings) -> str | None:
    """A sentence for the status line when the run will be long on this machine, else None."""
    seconds = run_seconds(denoiser, settings)
    if seconds <= LONG_RUN_SECONDS:
        return None
    per_step = seconds / settings.num_inference_steps
    where = "this GPU" if denoiser.device.type == "cuda" else "this CPU"
    faster = "fewer steps, a smaller batch" + (" or a smaller latent size" if hasattr(denoiser, "decode") else "")
    return (
        f"This run will take about {_duration(seconds)} on {where} ({per_step:.2f} s per step × "
        f"{settings.num_inference_steps} steps, measured): **Stop** cancels it; {faster} is faster."
    )


def gpu_duration(seconds: float) -> int:
    """The ZeroGPU slot (seconds) for a run estimated at `seconds`: twice the estimate, within GPU_SECONDS."""
    low, high = GPU_SECONDS
    return int(min(high, max(low, math.ceil(2 * seconds))))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


# Assumed seconds per sample-pass on a ZeroGPU slice, before anything is measured there: a latent model (SD 1.5 at
# 64² latents, guided: about 2.5 s for 50 steps on an A100-class GPU) and a pixel model (a 36 M-parameter UNet at 32²).
GPU_PASS_SECONDS = {"latent": 0.05, "pixel": 0.01}
LOAD_SECONDS = 30  # loading (and on first use downloading into the Space's preloaded cache) before the first step


def zero_gpu_seconds(values: RunValues, *args: object, **kwargs: object) -> int:
    """The ZeroGPU slot for a run with these Run controls (the extra arguments of the handler are ignored)."""
    try:
        steps, batch = int(values.steps), int(values.batch)
        kind = "latent" if takes_conditioning(values.ref) else "pixel"
    except (TypeError, ValueError, AttributeError):
        return GPU_SECONDS[0]
    return gpu_duration(LOAD_SECONDS + steps * batch * GPU_PASS_SECONDS[kind])
