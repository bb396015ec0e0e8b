"""Shared helpers for the app tests: bundled models (random-weight stand-ins when not yet trained) and a server."""

from __future__ import annotations

import functools
import socket
import tempfile
from pathlib import Path

import explorer.models.refs as refs

NAMES = [f"{data}-{suffix}" for data in ("digits", "moons", "ring") for suffix in ("eps", "x0", "v")]
CHECKPOINT_FILES = ("config.json", "scheduler_config.json", "diffusion_pytorch_model.safetensors")
PREDICTIONS = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}
DEFAULT_SCHEDULE = ["linear", 1000, 1e-4, 0.02, 0.008, False]  # schedule 1's controls
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright cannot download browsers here
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@functools.cache
def ensure_models() -> Path:
    """Point `explorer.models.refs` at a folder holding all nine bundled names (real ones when present)."""
    if all((refs.PRETRAINED_DIR / name / file).is_file() for name in NAMES for file in CHECKPOINT_FILES):
        return refs.PRETRAINED_DIR
    from diffusers import DDPMScheduler

    from explorer.data import Dataset
    from explorer.diffusion.parameterization import Prediction
    from tools.train import build_model, scheduler_config

    folder = Path(tempfile.mkdtemp(prefix="explorer-test-models-"))
    for name in NAMES:
        data, suffix = name.split("-")
        out = folder / name
        build_model(Dataset(data)).save_pretrained(out, safe_serialization=True)
        DDPMScheduler(**scheduler_config(Dataset(data), Prediction(PREDICTIONS[suffix]))).save_pretrained(out)
    refs.PRETRAINED_DIR = folder
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FakeRequest:
    """What handlers read from `gr.Request` when called as plain functions."""

    def __init__(self, session_hash: str = "test-session") -> None:
        self.session_hash = session_hash
        self.query_params: dict[str, str] = {}


def no_progress(*args, **kwargs) -> None:
    """A stand-in for `gr.Progress` when a handler is called directly."""
