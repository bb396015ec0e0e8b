"""Shared helpers for the app tests: bundled models (random-weight stand-ins when not yet trained) and a server."""

from __future__ import annotations

import functools
import socket
import tempfile
from pathlib import Path

import explorer.models.refs as refs

NAMES = [f"{data}-{suffix}" for data in ("digits", "moons", "ring") for suffix in ("eps", "x0", "v")]
NAMES += ["moons-eps-minsnr5"]  # ε trained with min-SNR-5 weighting, beside moons-eps on the Parameterizations tab
NAMES += ["moons-flow", "ring-flow", "digits-flow"]  # rectified flow: the velocity u = ε − x₀ on x_σ = (1 − σ) x₀ + σ ε
CHECKPOINT_FILES = ("config.json", "scheduler_config.json", "diffusion_pytorch_model.safetensors")
PREDICTIONS = {"eps": "epsilon", "x0": "sample", "v": "v_prediction", "flow": "flow_prediction"}
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
    """Point `explorer.models.refs` at a folder holding every bundled name in NAMES (real ones when present)."""
    if all((refs.PRETRAINED_DIR / name / file).is_file() for name in NAMES for file in CHECKPOINT_FILES):
        return refs.PRETRAINED_DIR
    import diffusers

    from explorer.data import Dataset
    from explorer.diffusion.parameterization import Prediction
    from tools.train import build_model, scheduler_config

    folder = Path(tempfile.mkdtemp(prefix="explorer-test-models-"))
    for name in NAMES:
        data, suffix = name.split("-")[:2]
        out = folder / name
        build_model(Dataset(data)).save_pretrained(out, safe_serialization=True)
        prediction = Prediction(PREDICTIONS[suffix])
        kind = "FlowMatchEulerDiscreteScheduler" if prediction is Prediction.FLOW else "DDPMScheduler"
        getattr(diffusers, kind)(**scheduler_config(Dataset(data), prediction)).save_pretrained(out)
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


def endpoint_inputs(config: dict, api_name: str) -> list[dict]:
    """The input components of the event named `api_name`, in the order its API takes them."""
    components = {component["id"]: component for component in config["components"]}
    for dependency in config["dependencies"]:
        if dependency.get("api_name") == api_name:
            return [components[i] for i in dependency["inputs"]]
    raise KeyError(f"no event named {api_name!r}")


def input_name(component: dict) -> str:
    """How a test names an input: its elem_id, else its label."""
    props = component.get("props", {})
    return props.get("elem_id") or props.get("label") or str(component["id"])


def api_arguments(config: dict, api_name: str, **changes) -> list:
    """Arguments for an endpoint in its order: each input's value on the page, with `changes` by name (elem_id or
    label). A name that the endpoint does not take is an error, so a test cannot change nothing by mistake."""
    inputs = endpoint_inputs(config, api_name)
    names = [input_name(component) for component in inputs]
    unknown = set(changes) - set(names)
    if unknown:
        raise KeyError(f"{api_name} takes no input named {', '.join(sorted(unknown))}; it takes {', '.join(names)}")
    return [
        changes.get(name, component.get("props", {}).get("value"))
        for name, component in zip(names, inputs, strict=True)
    ]


def position(config: dict, api_name: str, name: str) -> int:
    """Where the input called `name` sits among the endpoint's arguments."""
    return [input_name(component) for component in endpoint_inputs(config, api_name)].index(name)
