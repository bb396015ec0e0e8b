"""Hub downloads: configs first, checked, then safetensors weights only, each metadata fetch under a deadline.

The only module that talks to the Hugging Face Hub. huggingface_hub's HTTP client is replaced by one with a
timeout and a deadline hook on the first download (never on import: importing `explorer` changes no other
library's state). Hub errors become one-sentence `CheckpointError`s.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import httpx2

from explorer.models.checkpoint import CheckpointError, CheckpointProblem, read_layout, weights_variant

CONFIG_FILES = ("model_index.json", "config.json", "scheduler_config.json", "unet/config.json")
REFUSED_MARKERS = ("text_encoder/config.json", "vae/config.json", "vqvae/config.json")  # to refuse before weights
SCHEDULER_FILES = ("scheduler/scheduler_config.json",)
WEIGHT_PATTERNS = ("diffusion_pytorch_model*.safetensors", "diffusion_pytorch_model*.safetensors.index.json")
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
    from huggingface_hub.utils._http import hf_request_event_hook

    return httpx2.Client(
        event_hooks={"request": [hf_request_event_hook, _enforce_deadline]},
        follow_redirects=True,
        timeout=httpx2.Timeout(HUB_TIMEOUT_SECONDS),
    )


_CLIENT_LOCK = threading.Lock()
_client_installed = False


def _install_bounded_client() -> None:
    """Give huggingface_hub the bounded client, once, just before the first Hub request of this process."""
    global _client_installed
    with _CLIENT_LOCK:
        if not _client_installed:
            import huggingface_hub

            huggingface_hub.set_client_factory(_bounded_client)
            _client_installed = True


# --- downloads ----------------------------------------------------------------------------------


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

    _install_bounded_client()
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
