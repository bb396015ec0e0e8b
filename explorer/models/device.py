"""Where and in what precision a model runs: the accelerator (cuda, then mps, then cpu) and the weight dtype.

Both are parsed at the edge: an unknown name or an accelerator that is not present is a ValueError, never a
silent fallback once the caller has asked for something specific.
"""

from __future__ import annotations

import torch

WEIGHT_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """The device to run on: `requested` if given (checked to exist), else cuda, then mps, then cpu.

    `None` and "auto" choose automatically; "cuda", "cuda:1", "mps" and "cpu" are checked against the machine.
    """
    if requested is None or (isinstance(requested, str) and requested.strip().lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested.strip().lower() if isinstance(requested, str) else requested)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {requested!r}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            raise ValueError(f"device {requested!r} is not available: this machine has {count} CUDA device(s)")
    elif device.type == "mps" and not _mps_available():
        raise ValueError(f"device {requested!r} is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {requested!r}")
    return device


def weight_dtype(dtype: str | torch.dtype | None = None, device: torch.device | None = None) -> torch.dtype:
    """The dtype to hold weights in: `None` means float32; also float16, bfloat16 and float64 (names or dtypes), and
    "auto": 16 bits on a CUDA `device` (bfloat16 where the GPU has it, else float16), float32 elsewhere."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype.strip().lower() == "auto":
        from explorer.models.memory import choose_placement, device_facts  # memory imports the sampler's records

        return choose_placement(0, device_facts(device or pick_device())).dtype
    if isinstance(dtype, torch.dtype) and dtype in WEIGHT_DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.strip().lower().removeprefix("torch.") in WEIGHT_DTYPES:
        return WEIGHT_DTYPES[dtype.strip().lower().removeprefix("torch.")]
    raise ValueError(f"dtype must be 'auto' or one of {', '.join(WEIGHT_DTYPES)}; got {dtype!r}")
