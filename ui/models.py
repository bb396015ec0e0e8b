"""The models the app shows: bundled checkpoints by default, Hub ids when typed; loaded once and shared.

Local folders are accepted only when the process was started to accept them (`allow_local_folders`, which
`python app.py` calls with its server address and `--allow-local-folders`): by default, and always on a hosted
Space, a typed path is refused.
"""

from __future__ import annotations

import functools

import torch

from explorer.data import Dataset, exact_training_set
from explorer.diffusion.denoiser import Denoiser
from explorer.diffusion.oracle import OptimalDenoiser
from explorer.diffusion.parameterization import Prediction
from explorer.models.catalogue import CatalogueEntry, catalogue
from explorer.models.families import FAMILIES
from explorer.models.latent import LatentDenoiser
from explorer.models.loader import load, loaded
from explorer.models.pipelines import Family
from explorer.models.refs import Source, bundled_names, local_folders_allowed, resolve_ref

DEFAULT_MODEL = "digits-eps"
EXACT_PREFIX = "exact-"  # "exact-digits": E[x₀ | x_t] of the training set itself, run like any model
_local_folders = False  # set once at startup by `allow_local_folders`


def allow_local_folders(server_name: str | None, flag: bool = False) -> bool:
    """Accept typed local folders from now on when the server listens on loopback or `flag` asks for it (never
    on a Space). Returns what was decided."""
    global _local_folders
    _local_folders = local_folders_allowed(server_name, flag)
    return _local_folders


def bundled_models() -> list[str]:
    """Names of the bundled checkpoints present on disk (empty while none are trained yet)."""
    return sorted(bundled_names())


def _exact_sources() -> dict[str, tuple[Dataset, str]]:
    """Each exact denoiser's name → (its data set, the bundled model whose schedule and prediction it takes)."""
    bundled = set(bundled_models())
    sources = {}
    for data in Dataset:
        for suffix, name in (("eps", f"{EXACT_PREFIX}{data.value}"), ("flow", f"{EXACT_PREFIX}{data.value}-flow")):
            if f"{data.value}-{suffix}" in bundled:
                sources[name] = (data, f"{data.value}-{suffix}")
    return sources


def exact_models() -> list[str]:
    """The exact denoisers the page offers: `exact-<data>` per data set with a bundled ε-model (E[x₀ | x_t] on its
    schedule), and `exact-<data>-flow` per data set with a bundled flow model: the exact velocity of the training set,
    u* = (x_σ − E[x₀ | x_σ]) / σ, on the flow model's schedule (the VP schedule of equal SNR), predicted as u."""
    return list(_exact_sources())


def model_choices() -> list[str]:
    """Bundled checkpoints first (the default is one of them), the exact denoisers, then the Hub catalogue."""
    names = bundled_models() + exact_models()
    names += [entry.name for entry in catalogue() if entry.name not in names]
    return names or [DEFAULT_MODEL]


@functools.cache
def _exact(name: str) -> OptimalDenoiser:
    dataset, source = _exact_sources()[name]
    network = load(source)
    prediction = Prediction.FLOW if network.prediction is Prediction.FLOW else Prediction.SAMPLE
    return OptimalDenoiser(exact_training_set(dataset), network.schedule, prediction, name=name)


def exact_dataset(ref: str) -> Dataset | None:
    """The data set of an exact denoiser's name ("exact-digits" and "exact-digits-flow" → digits), else None."""
    if isinstance(ref, str) and ref.startswith(EXACT_PREFIX):
        found = _exact_sources().get(ref)
        return None if found is None else found[0]
    return None


def dataset_of(ref: str) -> Dataset | None:
    """The data set a bundled or exact model was made from ("moons-v" → moons), else None (Hub and local models)."""
    if (exact := exact_dataset(ref)) is not None:
        return exact
    if ref in bundled_models():
        head = ref.split("-", 1)[0]
        return Dataset(head) if head in {d.value for d in Dataset} else None
    return None


def load_model(ref: str) -> Denoiser:
    """A shared denoiser for a bundled name, an exact denoiser's name, a Hub id or (when allowed) a folder;
    ValueError says what is wrong."""
    if exact_dataset(ref) is not None:
        return _exact(ref)
    return load(ref, allow_local=_local_folders, dtype=app_dtype())


def app_dtype() -> torch.dtype:
    """The weights' dtype in the app: bfloat16 on a CUDA GPU that has it (float16 on older ones), float32 elsewhere.
    The sampler's step maths stays in float32 or better whatever the weights hold."""
    if not torch.cuda.is_available():
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def check_ref(ref: str) -> str:
    """`ref` if it names a model this page may load (bundled, exact, a Hub id, or a folder where those are allowed);
    ValueError otherwise. String checks only: nothing is loaded or downloaded."""
    if exact_dataset(ref) is None:
        resolve_ref(ref, allow_local=_local_folders)
    return ref


def is_bundled(ref: str) -> bool:
    """True for a bundled checkpoint's name, False for a valid Hub id; ValueError for anything else (a path, a bad
    id). Pure string checks and a listing of `pretrained/`: nothing is loaded or downloaded."""
    if exact_dataset(ref) is not None:
        return True
    source, _ = resolve_ref(ref)
    return source is Source.BUNDLED


def optional_model(ref: str) -> Denoiser | None:
    """A bundled model if it exists, else None (a view then explains what is missing instead of failing)."""
    if ref not in bundled_models():
        return None
    try:
        return load_model(ref)
    except (ValueError, OSError):
        return None


CONDITIONING_CONTROLS = ("prompt", "negative_prompt", "guidance", "guidance_rescale", "class_label", "latent_size")
# What each family takes and what the page calls it, from the family's own code (explorer.models.families).
FAMILY_CONTROLS: dict[Family, frozenset[str]] = {
    Family.PIXEL: frozenset(),
    **{family: kind.controls for family, kind in FAMILIES.items()},
}
FAMILY_NAMES: dict[Family, str] = {Family.PIXEL: "pixel space", **{f: kind.title for f, kind in FAMILIES.items()}}


def loaded_model(ref: str) -> Denoiser | None:
    """The denoiser `load_model(ref)` would return if it is loaded already, else None; nothing is read or downloaded
    for a checkpoint (an exact denoiser is built from its bundled ε-model, cheaply, and cached). ValueError for what
    is not a reference."""
    if exact_dataset(ref) is not None:
        return load_model(ref)  # built from the bundled ε-model and the data set: cheap, and cached
    return loaded(ref, allow_local=_local_folders, dtype=app_dtype())


def family_of(denoiser: Denoiser) -> Family:
    """The family of a loaded denoiser: a latent checkpoint's own, else pixel space."""
    return denoiser.family if isinstance(denoiser, LatentDenoiser) else Family.PIXEL


def _entry(ref: str) -> CatalogueEntry | None:
    return next((entry for entry in catalogue() if entry.name == ref), None)


def conditioning_controls(ref: str) -> frozenset[str]:
    """The Run controls of `CONDITIONING_CONTROLS` that `ref` takes, by its family: none for bundled, exact and
    pixel models; a loaded or catalogued model's family's; all of them for a typed Hub id not loaded yet (what it
    takes is known only once it loads). ValueError for what is not a reference. Nothing is loaded."""
    ref = (ref or "").strip()
    if exact_dataset(ref) is not None or ref in bundled_models():
        return FAMILY_CONTROLS[Family.PIXEL]
    check_ref(ref)  # a path or a malformed id: ValueError
    if (model := loaded_model(ref)) is not None:
        return model.kind.model_controls(model) if isinstance(model, LatentDenoiser) else FAMILY_CONTROLS[Family.PIXEL]
    entry = _entry(ref)
    return frozenset(CONDITIONING_CONTROLS) if entry is None else FAMILY_CONTROLS[entry.family]


def takes_conditioning(ref: str) -> bool:
    """Whether `ref` takes any of the conditioning or latent-size controls (see `conditioning_controls`)."""
    return bool(conditioning_controls(ref))


def describe(ref: str, seconds_per_pass: float | None, device: str) -> str:
    """One line about `ref` for the model box. Once the model is loaded: its family, prediction, scheduler class,
    number of training timesteps and sample shape, read from the loaded model; before that, the catalogue's facts
    (or that a typed id is read when it loads). Then the seconds per step at batch 1 measured on this device, or
    when it will be. No checkpoint is loaded (see `loaded_model`)."""
    ref = (ref or "").strip()
    where = "this GPU" if device.startswith("cuda") else "this CPU"
    speed = (
        f"≈ {seconds_per_pass:.2f} s per step at batch 1 on {where} (measured)"
        if seconds_per_pass is not None
        else f"seconds per step on {where}: measured by its first run, which says so before a long one"
    )
    check_ref(ref)
    if (model := loaded_model(ref)) is not None:
        scheduler = model.scheduler_config.get("_class_name", "no scheduler config (the explorer's own samplers)")
        shape = "×".join(str(size) for size in model.sample_shape)
        kind = FAMILY_NAMES[family_of(model)] if len(model.sample_shape) > 1 else "points in the plane"
        if exact_dataset(ref) is not None:
            kind += ", the exact E[x₀ | x_t] of its training set"
        latest = last_run(model.name, device)
        return (
            f"`{ref}` (loaded): {kind} · {Prediction.parse(model.prediction).value} · "
            f"{scheduler} · T = {model.schedule.num_train_timesteps} · samples {shape} · {speed}"
            + (f" · {latest}" if latest else "")
        )
    entry = _entry(ref)
    if entry is None:
        return f"`{ref}`: family, prediction and scheduler are read from its configs when it loads · {speed}"
    shape = "×".join(str(size) for size in entry.sample_shape)
    return (
        f"`{entry.name}`: {FAMILY_NAMES[entry.family]} · {entry.prediction.value} · "
        f"samples {shape} · {entry.num_parameters / 1e6:,.1f} M parameters · {speed}"
    )


_SPEEDS: dict[tuple[str, str], float] = {}  # (model name, device) → seconds per sample-pass, measured by ui.estimate


def record_speed(name: str, device: str, seconds: float) -> None:
    """Keep the seconds per sample-pass measured for the model `name` on `device` (the model box shows it)."""
    _SPEEDS[(name, device)] = seconds


_RUNS: dict[tuple[str, str], str] = {}  # (model name, device) → what its latest run here took, against its estimate


def record_run(name: str, device: str, seconds: float, estimate: float, steps: int, batch: int) -> None:
    """Keep how long the latest run of `name` on `device` took and what it was estimated at (the model box says)."""
    _RUNS[(name, device)] = (
        f"its last run here took {seconds:.1f} s for {steps} steps × batch {batch} (estimated {estimate:.1f} s)"
    )


def last_run(name: str, device: str) -> str | None:
    """The sentence `record_run` kept for `name` on `device`, or None."""
    return _RUNS.get((name, device))


def measured_seconds(name: str, device: str) -> float | None:
    """Seconds per sample-pass measured for the model `name` on `device` in this process, or None."""
    return _SPEEDS.get((name, device))
