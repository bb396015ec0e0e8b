"""Load checkpoints safely: bundled ones, Hub repos and (only when running locally) folders on disk.

This is the only module that touches the Hub or the filesystem for models. A reference is one of
- a bundled checkpoint's name: a folder under `pretrained/` beside the package (e.g. "moons-eps");
- a Hub model id "owner/name", with an optional pinned `revision`;
- a local folder (a `Path`, or a string starting with "/", "./", "../" or "~"), accepted only with
  `allow_local=True` and never when `SPACE_ID` is set (a hosted Space).
Every typed id is validated before anything touches the filesystem. From the Hub only JSON configs and
safetensors weights are downloaded; pickled weights are refused and never opened; no remote code runs.

Loaded models live in a bounded, thread-safe, process-wide cache keyed by (source, revision, device, dtype),
so every user of a server shares one copy. Denoisers take diffusers' 0-based timestep (paper t = timestep + 1).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path

import httpx2
import huggingface_hub
import torch
from huggingface_hub.utils._http import hf_request_event_hook

from explorer.checkpoint import (
    CheckpointError,
    CheckpointProblem,
    ModuleDenoiser,
    load_folder,
    read_layout,
    weights_variant,
)
from explorer.device import pick_device, weight_dtype
from explorer.model_cache import ModelCache

HUB_TIMEOUT_SECONDS = 10.0  # one request
HUB_BUDGET_SECONDS = 15.0  # one metadata fetch, retries and backoff included
_DEADLINE: ContextVar[float | None] = ContextVar("hub_deadline", default=None)


class HubDeadlineExceeded(TimeoutError):
    """The Hub did not answer within HUB_BUDGET_SECONDS. Not an httpx error, so huggingface_hub never retries it."""


@contextmanager
def hub_deadline(seconds: float | None = None) -> Iterator[None]:
    """Bound every Hub request made by this thread inside the block, retries included, to `seconds` in all.

    `seconds` None means HUB_BUDGET_SECONDS.
    """
    token = _DEADLINE.set(time.monotonic() + (HUB_BUDGET_SECONDS if seconds is None else seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _enforce_deadline(request: httpx2.Request) -> None:
    """Request hook: refuse a request once the deadline has passed, else shorten its timeout to what is left.

    huggingface_hub retries timeouts five times with backoff (about 80 s for one silent request); this hook is
    what keeps a silent Hub within the budget. Requests from worker threads (file downloads) have no deadline
    and keep the per-request timeout.
    """
    deadline = _DEADLINE.get()
    if deadline is None:
        return
    left = deadline - time.monotonic()
    if left <= 0:
        raise HubDeadlineExceeded("no answer from the Hub within the time allowed")
    seconds = min(HUB_TIMEOUT_SECONDS, left)
    request.extensions["timeout"] = {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}


def _bounded_client() -> httpx2.Client:
    """huggingface_hub's own client with a timeout: its default waits forever on a Hub that never answers."""
    return httpx2.Client(
        event_hooks={"request": [hf_request_event_hook, _enforce_deadline]},
        follow_redirects=True,
        timeout=httpx2.Timeout(HUB_TIMEOUT_SECONDS),
    )


huggingface_hub.set_client_factory(_bounded_client)

PRETRAINED_DIR = Path(__file__).parent.parent / "pretrained"
MAX_REPO_ID_LENGTH = 96
MAX_CACHED_MODELS = 4
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_BUNDLED_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
_LOCAL_PREFIXES = ("/", "./", "../", "~", "\\")
CONFIG_FILES = ("model_index.json", "config.json", "scheduler_config.json", "unet/config.json")
REFUSED_MARKERS = ("text_encoder/config.json", "vae/config.json", "vqvae/config.json")  # to refuse before weights
SCHEDULER_FILES = ("scheduler/scheduler_config.json",)
WEIGHT_PATTERNS = ("diffusion_pytorch_model*.safetensors", "diffusion_pytorch_model*.safetensors.index.json")


class Source(StrEnum):
    """Where a checkpoint comes from."""

    BUNDLED = "bundled"
    HUB = "hub"
    LOCAL = "local"


def _invalid(ref: object, why: str) -> CheckpointError:
    shown = repr(ref) if len(repr(ref)) <= 80 else repr(ref)[:80] + "…"
    return CheckpointError(
        CheckpointProblem.INVALID_REF,
        f"{shown} is not a bundled checkpoint name or a Hub model id of the form owner/name ({why}).",
    )


def check_repo_id(repo_id: str) -> str:
    """Return `repo_id` if it is a valid Hub model id "owner/name"; pure string checks, no file access."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if len(repo_id) > MAX_REPO_ID_LENGTH:
        raise _invalid(repo_id[:40] + "…", f"longer than {MAX_REPO_ID_LENGTH} characters")
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or "--" in repo_id or repo_id.endswith(".git"):
        raise _invalid(repo_id, "use letters, digits, '-', '_' and '.' on both sides of one '/'")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise _invalid(repo_id, str(error).splitlines()[0]) from None
    return repo_id


def check_revision(revision: str | None) -> str | None:
    """Return `revision` (a branch, tag or commit sha) if it is safe to use as a cache path component."""
    if revision is None:
        return None
    text = revision if isinstance(revision, str) else ""
    if not _REVISION.fullmatch(text) or ".." in text or "//" in text or text.endswith("/"):
        raise CheckpointError(
            CheckpointProblem.INVALID_REF,
            f"revision {revision!r} is not a branch, tag or commit sha (letters, digits, '.', '_', '-', '/').",
        )
    return text


def bundled_names() -> tuple[str, ...]:
    """Names of the bundled denoisers: folders under `pretrained/` with a config.json and a scheduler_config.json.

    (Other folders there, such as a classifier used to measure sample quality, are not denoisers.)
    """
    if not PRETRAINED_DIR.is_dir():
        return ()
    folders = (p for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file())
    return tuple(sorted(p.name for p in folders if (p / "scheduler_config.json").is_file()))


def _is_local(ref: str | os.PathLike[str]) -> bool:
    return isinstance(ref, os.PathLike) or ref.startswith(_LOCAL_PREFIXES) or ref in (".", "..")


def resolve_ref(
    ref: str | os.PathLike[str], *, revision: str | None = None, allow_local: bool = False
) -> tuple[Source, str]:
    """Classify a reference as (BUNDLED, name), (HUB, repo_id) or (LOCAL, absolute path).

    Bad ids raise CheckpointError before any file is touched (local folders excepted, when allowed).
    """
    if not isinstance(ref, str | os.PathLike):
        raise _invalid(ref, f"expected a string, got {type(ref).__name__}")
    text = ref.strip() if isinstance(ref, str) else ref
    if _is_local(text):
        if not allow_local or os.environ.get("SPACE_ID"):
            raise CheckpointError(
                CheckpointProblem.LOCAL_REFUSED,
                f"{str(text)[:80]!r} looks like a local folder, and local folders are accepted only when the app "
                "runs on your own machine with local loading allowed, never on a hosted Space.",
            )
        if revision is not None:
            raise _invalid(str(text), "a revision applies to Hub ids only")
        return Source.LOCAL, str(Path(text).expanduser().resolve())
    if not text:
        raise _invalid(ref, "it is empty")
    if "/" not in text:
        if not _BUNDLED_NAME.fullmatch(text):
            raise _invalid(text, "bundled names use lower-case letters, digits, '-' and '_'")
        if revision is not None:
            raise _invalid(text, "a revision applies to Hub ids only")
        names = bundled_names()
        if text not in names:
            raise CheckpointError(
                CheckpointProblem.NOT_FOUND,
                f"There is no bundled checkpoint named {text!r}; the bundled ones are {', '.join(names) or 'none'}.",
            )
        return Source.BUNDLED, text
    check_revision(revision)
    return Source.HUB, check_repo_id(text)


# --- Hub downloads ------------------------------------------------------------------------------


HUB_SENTENCES: dict[CheckpointProblem, str] = {
    CheckpointProblem.GATED: "{repo} is a gated repository: accept its conditions on huggingface.co and set HF_TOKEN "
    "to a token with access before loading it.",
    CheckpointProblem.NOT_FOUND: "There is no model repository {repo} on the Hugging Face Hub that this app may read; "
    "check the spelling, and set HF_TOKEN if it is private.",
    CheckpointProblem.UNAUTHORIZED: "{repo} is private or needs a login: set HF_TOKEN to a token that can read it.",
    CheckpointProblem.REVISION_NOT_FOUND: "{repo} has no revision {revision}; give a branch, a tag or a commit sha "
    "that exists.",
    CheckpointProblem.OFFLINE: "The Hugging Face Hub cannot be reached and {repo}{at} is not in the local cache; "
    "connect once to download it, or pick a bundled checkpoint.",
    CheckpointProblem.MISSING_FILES: "{repo}{at} is missing a file it needs, so it cannot be loaded.",
    CheckpointProblem.HUB_ERROR: "The Hugging Face Hub answered {repo} with an error (HTTP {status}); try again later.",
}


def _hub_problem(error: BaseException) -> tuple[CheckpointProblem, int | None] | None:
    """The problem a huggingface_hub error (in `error` or its causes) stands for, with its HTTP status."""
    from huggingface_hub import errors

    offline = (errors.LocalEntryNotFoundError, errors.RevisionResolutionError, ConnectionError, TimeoutError)
    seen: BaseException | None = error
    while seen is not None:
        status = getattr(getattr(seen, "response", None), "status_code", None)
        if isinstance(seen, errors.GatedRepoError):  # before its base class, RepositoryNotFoundError
            return CheckpointProblem.GATED, status
        if isinstance(seen, errors.RepositoryNotFoundError | errors.DisabledRepoError):
            return CheckpointProblem.NOT_FOUND, status
        if isinstance(seen, errors.RevisionNotFoundError):
            return CheckpointProblem.REVISION_NOT_FOUND, status
        if isinstance(seen, offline):  # OfflineModeIsEnabled is a ConnectionError
            return CheckpointProblem.OFFLINE, status
        if isinstance(seen, errors.EntryNotFoundError):
            return CheckpointProblem.MISSING_FILES, status
        if isinstance(seen, errors.HfHubHTTPError):
            return (CheckpointProblem.UNAUTHORIZED if status in (401, 403) else CheckpointProblem.HUB_ERROR), status
        if type(seen).__module__.startswith(("httpx", "requests")):  # connection refused, timeouts
            return CheckpointProblem.OFFLINE, status
        seen = seen.__cause__ or seen.__context__
    return None


def hub_error(error: BaseException, repo_id: str, revision: str | None) -> CheckpointError | None:
    """One sentence for a huggingface_hub error (found in `error` or its causes), or None if it is not one.

    diffusers wraps Hub errors in a plain OSError with the typed error in `__cause__`; both are understood.
    """
    found = _hub_problem(error)
    if found is None:
        return None
    problem, status = found
    at = f" at revision {revision!r}" if revision else ""
    message = HUB_SENTENCES[problem].format(repo=repr(repo_id), revision=repr(revision), at=at, status=status)
    return CheckpointError(problem, message)


def _snapshot(repo_id: str, revision: str | None, patterns: list[str]) -> Path:
    """Download (or find in the cache) the files of `repo_id` matching `patterns`; return the snapshot folder."""
    from huggingface_hub import snapshot_download

    try:
        try:
            with hub_deadline():
                return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
        except HubDeadlineExceeded:  # a silent Hub: what the cache holds, as when offline
            return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, local_files_only=True))
    except Exception as error:
        mapped = hub_error(error, repo_id, revision)
        if mapped is None:
            raise
        raise mapped from error


def _remote_pickles(repo_id: str, revision: str, prefix: str) -> tuple[str, ...]:
    """Names of pickled files the repo lists under `prefix` (empty when offline): to say why it is refused."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return ()
    try:
        with hub_deadline():
            files = HfApi().list_repo_files(repo_id, revision=revision)
    except Exception:
        return ()
    return tuple(
        name.removeprefix(prefix) for name in files if name.startswith(prefix) and "/" not in name[len(prefix) :]
    )


def fetch_hub_checkpoint(repo_id: str, revision: str | None = None) -> Path:
    """Download a Hub checkpoint's configs, check them, then its safetensors weights; return the local folder."""
    configs = _snapshot(repo_id, revision, [*CONFIG_FILES, *SCHEDULER_FILES, *REFUSED_MARKERS])
    layout = read_layout(configs, repo_id)  # refuses text-conditioned, latent and unknown models before any weights
    pinned = configs.name if re.fullmatch(r"[0-9a-f]{40}", configs.name) else revision
    prefix = "" if layout.model_folder == configs else f"{layout.model_folder.name}/"
    folder = _snapshot(repo_id, pinned, [prefix + pattern for pattern in WEIGHT_PATTERNS])
    try:
        weights_variant(folder / prefix if prefix else folder, repo_id)
    except CheckpointError as error:
        if error.problem is not CheckpointProblem.MISSING_FILES:
            raise
        weights_variant(
            folder / prefix if prefix else folder, repo_id, _remote_pickles(repo_id, pinned or "main", prefix)
        )
    return folder


MODEL_CACHE: ModelCache[ModuleDenoiser] = ModelCache(MAX_CACHED_MODELS)


def clear_cache() -> None:
    """Forget every cached model (for tests, or to free memory)."""
    MODEL_CACHE.clear()


def load(
    ref: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    revision: str | None = None,
    dtype: str | torch.dtype | None = None,
    allow_local: bool = False,
) -> ModuleDenoiser:
    """Load a denoiser: a bundled checkpoint's name, a Hub id "owner/name" (at `revision`), or a local folder.

    `device` None picks cuda, then mps, then cpu; `dtype` None means float32. Local folders need
    `allow_local=True` and are refused whenever `SPACE_ID` is set. Failures raise CheckpointError (a ValueError)
    with one sentence. The result is shared: the same (source, revision, device, dtype) returns the same object.
    """
    source, identifier = resolve_ref(ref, revision=revision, allow_local=allow_local)
    target, precision = pick_device(device), weight_dtype(dtype)
    key = (source, identifier, revision, str(target), str(precision))

    def loader() -> ModuleDenoiser:
        if source is Source.HUB:
            folder, description = fetch_hub_checkpoint(identifier, revision), f"Hub checkpoint {identifier}"
        elif source is Source.BUNDLED:
            folder, description = PRETRAINED_DIR / identifier, f"bundled checkpoint {identifier}"
        else:
            folder, description = Path(identifier), f"local checkpoint {identifier}"
            if not folder.is_dir():
                raise CheckpointError(CheckpointProblem.NOT_FOUND, f"There is no checkpoint folder at {identifier!r}.")
        name = folder.name if source is Source.LOCAL else identifier
        return load_folder(folder, name=name, device=target, dtype=precision, description=description)

    return MODEL_CACHE.get_or_load(key, loader)
