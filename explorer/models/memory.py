"""Large weights: a latent run sized before it starts, and where (dtype, CPU offload) a checkpoint's weights go.

A run holds, at its peak (bytes; B = batch, S = steps, n = B × the numbers of one latent):

    code name      what                                                     how it is known
    weights        every module's parameters and buffers, in their dtype     counted on the loaded modules
    activations    the peak of one model call's live tensors (the guided    traced: the family's own forward pass on
                   batch of 2B included, where guidance runs one)           the meta device (shapes only, no compute)
    step           one step's own tensors (x_t, ε̂, x̂₀, v̂, û, μ, z, x_prev   n × STEP_BYTES_PER_NUMBER (the CPU sampler
                   in the compute dtype, and their float32 copies)           does its maths in float64)
    record         the compact record the app keeps of the run              `trajectory.compact_nbytes(S, B, shape)`

`size_run` adds them up; `check_run_fits` refuses a run above the memory there is and names what fits (a smaller
batch, fewer steps, a smaller latent size). `choose_placement` decides, from the device's own facts
(`device_facts`), the weight dtype (bfloat16 on a CUDA GPU that has it, else float16; float32 on the CPU and MPS)
and whether the weights go to the GPU module by module (model CPU offload) because they do not fit it whole.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from explorer.diffusion.trajectory import compact_nbytes
from explorer.validation import check_int

GIB = 1 << 30
STEP_BYTES_PER_NUMBER = 10 * 8 + 12 * 4  # ten float64 tensors of the step's maths, twelve float32 recorded copies
GPU_HEADROOM = 0.9  # the share of a GPU's free memory the weights may take whole (the rest: activations, CUDA)


# --- sizing a run ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSize:
    """Bytes a run needs at its peak (see the module's table)."""

    weights: int
    activations: int
    step: int
    record: int

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.step + self.record


class PeakBytes(TorchDispatchMode):
    """The peak of the bytes held by tensors that ops create while it is active (views and in-place results are
    the storage they alias, not new bytes): on the meta device the estimate of a call, on a real device its
    measurement."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if getattr(func, "is_view", False):
            return out
        given = {id(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and id(tensor) not in given:
                size = tensor.untyped_storage().nbytes()
                self.live += size
                self.peak = max(self.peak, self.live)
                weakref.finalize(tensor, self._release, size)
        return out

    def _release(self, size: int) -> None:
        self.live -= size


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers, in their own dtypes."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def weight_bytes(model) -> int:
    """Bytes of a latent model's weights: its network, decoder and text encoders."""
    parts = model.parts
    return sum(module_bytes(m) for m in (parts.network, parts.decoder, *parts.text_encoders))


def activation_bytes(model, batch_size: int) -> int:
    """The peak bytes of live tensors during one model call of `model` (a LatentDenoiser, conditioned or not) on a
    batch of `batch_size` latents: its family's forward pass traced on a meta-device copy of its network (the
    same ops at the same shapes, nothing computed), guidance's 2B batch included."""
    check_int("batch", batch_size, 1, 1 << 16)
    network = model.parts.network
    with torch.device("meta"):
        shadow = type(network).from_config(network.config).eval()
    if model.dtype != torch.float32:
        shadow = shadow.to(model.dtype)
    meta = copy.copy(model)
    meta.parts = dataclasses.replace(model.parts, network=shadow)
    meta._embeddings = {name: value.to("meta") for name, value in model.embeddings().items()}
    x = torch.empty((batch_size, *model.sample_shape), device="meta", dtype=model.dtype)
    middle = len(model.schedule.alphas_cumprod) // 2
    with PeakBytes() as peak:
        meta.predict(x, middle)
    return peak.peak


def size_run(model, num_inference_steps: int, batch_size: int) -> RunSize:
    """What a run of `model` (a LatentDenoiser, bound to its conditioning) of S steps at batch B needs at its peak."""
    check_int("steps", num_inference_steps, 1, 1 << 20)
    numbers = batch_size * math.prod(model.sample_shape)
    guided = getattr(model, "conditional", False) and model.guidance_scale > 1.0
    return RunSize(
        weights=weight_bytes(model),
        activations=activation_bytes(model, batch_size),
        step=numbers * STEP_BYTES_PER_NUMBER,
        record=compact_nbytes(num_inference_steps, batch_size, model.sample_shape, guided),
    )


def check_run_fits(model, num_inference_steps: int, batch_size: int, available: int) -> RunSize:
    """`size_run`, refused with a ValueError that names what fits when it needs more than `available` bytes."""
    size = size_run(model, num_inference_steps, batch_size)
    if size.total <= available:
        return size
    what = (
        f"this run needs about {size.total / GIB:.2f} GiB (weights {size.weights / GIB:.2f}, one model call "
        f"{size.activations / GIB:.2f}, the step {size.step / GIB:.2f}, the record {size.record / GIB:.2f}) but "
        f"{available / GIB:.2f} GiB are available"
    )
    room = available - size.weights
    if room <= 0:
        raise ValueError(
            f"{what}: the weights alone do not fit; load it in 16 bits (dtype='auto' on a GPU), with CPU offload, "
            "or on a machine with more memory"
        )
    options = []
    batch = next(
        (b for b in range(batch_size - 1, 0, -1) if size_run(model, num_inference_steps, b).total <= available), 0
    )
    if batch:
        options.append(f"batch {batch} at {num_inference_steps} steps")
    fixed = size.weights + size.activations + size.step
    per_step = compact_nbytes(1, batch_size, model.sample_shape) or 1
    steps = min(num_inference_steps - 1, max(0, (available - fixed) // per_step - 1))
    if steps >= 1:
        options.append(f"{steps} steps at batch {batch_size}")
    options.append("a smaller latent size")
    raise ValueError(f"{what}: {' or '.join(options)} would fit")


# --- where the weights go ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceFacts:
    """What decides a placement: the device, whether it computes in bfloat16, its free memory in bytes."""

    device: torch.device
    bf16: bool
    free_bytes: int | None  # None: not known (CPU, MPS)


@dataclass(frozen=True)
class Placement:
    """Where a checkpoint's weights go: their dtype, and whether they wait on the CPU and move to the GPU one
    module at a time (model CPU offload, as diffusers' `enable_model_cpu_offload`)."""

    dtype: torch.dtype
    offload: bool
    reason: str


def device_facts(device: torch.device | str) -> DeviceFacts:
    """The device's facts, asked of torch (the only function here that queries a device)."""
    device = torch.device(device)
    if device.type != "cuda":
        return DeviceFacts(device, bf16=False, free_bytes=None)
    free, _ = torch.cuda.mem_get_info(device)
    return DeviceFacts(device, bf16=bool(torch.cuda.is_bf16_supported()), free_bytes=int(free))


def available_bytes(device: torch.device | str) -> int:
    """The memory a run on `device` may still take: a CUDA GPU's free memory, else the machine's MemAvailable
    (Linux; 0 where it cannot be read). A model already loaded there holds its weights on top of this, so its
    run fits when `size_run(...).total <= available_bytes(device) + weight_bytes(model)`."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            line = next(line for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1]) * 1024  # kB


def choose_placement(num_parameters: int, facts: DeviceFacts) -> Placement:
    """The weight dtype and offload for `num_parameters` weights on a device with `facts` (pure).

    CUDA: bfloat16 where the GPU has it, else float16; offload when the 16-bit weights exceed GPU_HEADROOM of the
    free memory. CPU and MPS: float32, no offload (MPS has no float64 and its float16 is not the reference)."""
    if facts.device.type != "cuda":
        return Placement(torch.float32, False, f"float32 on {facts.device.type}")
    dtype = torch.bfloat16 if facts.bf16 else torch.float16
    need = num_parameters * 2
    name = "bfloat16" if facts.bf16 else "float16 (this GPU has no bfloat16)"
    if facts.free_bytes is not None and need > GPU_HEADROOM * facts.free_bytes:
        return Placement(
            dtype,
            True,
            f"{name}; the weights ({need / GIB:.1f} GiB) exceed the GPU's free {facts.free_bytes / GIB:.1f} GiB, "
            "so each module moves to the GPU only while it runs (model CPU offload)",
        )
    return Placement(dtype, False, f"{name}, the weights ({need / GIB:.1f} GiB) on the GPU")


def offload_parts(parts, device: torch.device) -> None:
    """Model CPU offload (diffusers' `enable_model_cpu_offload`, with accelerate's hooks): the modules stay on the
    CPU and each moves to `device` when it is called, the one before it going back (text encoders, network,
    decoder, in the order a run calls them)."""
    from accelerate import cpu_offload_with_hook

    hook = None
    for module in (*parts.text_encoders, parts.network, parts.decoder):
        _, hook = cpu_offload_with_hook(module, execution_device=device, prev_module_hook=hook)


def place_parts(parts, device: torch.device) -> Placement | None:
    """Put a latent checkpoint's modules (loaded on the CPU) on `device`: whole, or with model CPU offload when
    `choose_placement` says the GPU cannot hold them (CUDA only). Returns the placement decided on a GPU."""
    modules = (parts.network, parts.decoder, *parts.text_encoders)
    placement = None
    if device.type == "cuda":
        parameters = sum(p.numel() for module in modules for p in module.parameters())
        placement = choose_placement(parameters, device_facts(device))
        if placement.offload:
            offload_parts(parts, device)
            return placement
    for module in modules:
        module.to(device)
    return placement
