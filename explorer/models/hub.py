"""Hub downloads: configs first, checked, then the repo's file list (names and sizes), then safetensors weights only.

Each metadata fetch runs under a deadline; no weight file is downloaded before the file list (and a shard
index, downloaded alone) says it is a .safetensors file within the size limit.

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
from typing import Any

import httpx2

from explorer.models.checkpoint import read_layout
from explorer.models.errors import MAX_CONFIG_BYTES, CheckpointError, CheckpointProblem, read_json
from explorer.models.pipelines import read_pipeline
from explorer.models.weights import WEIGHTS_STEM, check_weight_size, plan_weights

CONFIG_FILES = ("model_index.json", "config.json", "scheduler_config.json", "unet/config.json")
COMPONENT_CONFIGS = tuple(
    f"{part}/config.json" for part in ("text_encoder", "text_encoder_2", "vae", "vqvae", "transformer")
)
SCHEDULER_FILES = ("scheduler/scheduler_config.json",)
WEIGHT_PATTERNS = ("diffusion_pytorch_model*.safetensors", "diffusion_pytorch_model*index*.json")  # cache only
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


def _snapshot(repo_id: str, revision: str | None, patterns: list[str], *, cache_only: bool = False) -> Path:
    """Download (or find in the cache) the files of `repo_id` matching `patterns`; return the snapshot folder.

    `cache_only` never downloads: what the cache holds, as when offline.
    """
    from huggingface_hub import snapshot_download

    _install_bounded_client()
    try:
        if not cache_only:
            try:
                with hub_deadline():
                    return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
            except HubDeadlineExceeded:  # a silent Hub: what the cache holds, as when offline
                pass
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, local_files_only=True))
    except Exception as error:
        mapped = hub_error(error, repo_id, revision)
        if mapped is None:
            raise
        raise mapped from error


def _repo_files(repo_id: str, revision: str | None) -> dict[str, int | None] | None:
    """Every file of the repo at `revision` with its size in bytes; None when the Hub cannot be reached."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return None
    _install_bounded_client()
    try:
        with hub_deadline():
            info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    except Exception as error:
        mapped = hub_error(error, repo_id, revision)  # a silent Hub's HubDeadlineExceeded reads as OFFLINE
        if mapped is None:
            raise
        if mapped.problem is CheckpointProblem.OFFLINE:
            return None
        raise mapped from error
    if info.siblings is None:
        return None
    return {sibling.rfilename: sibling.size for sibling in info.siblings}


def cached_snapshot(repo_id: str, patterns: list[str]) -> Path | None:
    """The local cache's snapshot of `repo_id` (files matching `patterns`), never downloading; None when absent."""
    try:
        return _snapshot(repo_id, None, patterns, cache_only=True)
    except CheckpointError:
        return None


def fetch_hub_checkpoint(repo_id: str, revision: str | None = None) -> Path:
    """Download a Hub checkpoint's configs, check them, then its safetensors weights; return the local folder.

    Before any weights are downloaded, the repo's file list decides what a load reads: a shard index is
    downloaded alone and may name only .safetensors files the repo has, and the listed sizes of every component's
    weights together must fit in `max_weight_bytes()`. Only those files (and a pipeline's tokenizer files) are
    downloaded. When the Hub cannot be reached, the cache is used as it is; the loader checks the files on disk in
    every case.
    """
    configs = _snapshot(repo_id, revision, [*CONFIG_FILES, *SCHEDULER_FILES, *COMPONENT_CONFIGS])
    pinned = configs.name if re.fullmatch(r"[0-9a-f]{40}", configs.name) else revision
    spec = read_pipeline(configs, repo_id)  # refuses custom pipelines, remote code and unknown families
    if spec is not None:
        folders = {f"{part}/": stem for part, stem in spec.weight_folders().items()}
        extra = spec.tokenizer_patterns()
    else:
        layout = read_layout(configs, repo_id)  # refuses what the explorer cannot run before any weights
        folders = {"" if layout.model_folder == configs else f"{layout.model_folder.name}/": WEIGHTS_STEM}
        extra = ()
    listing = _repo_files(repo_id, pinned)
    if listing is None:  # offline, or a silent Hub
        patterns = [
            f"{prefix}{stem}{tail}" for prefix, stem in folders.items() for tail in ("*.safetensors", "*index*.json")
        ]
        return _snapshot(repo_id, pinned, [*patterns, *extra], cache_only=True)
    files: list[str] = []
    total = 0
    for prefix, stem in folders.items():
        planned, size = _plan_folder(repo_id, pinned, listing, prefix, stem)
        files += planned
        total += size
    check_weight_size(total, repo_id)
    return _snapshot(repo_id, pinned, [*files, *extra])


def _plan_folder(
    repo_id: str, pinned: str | None, listing: dict[str, int | None], prefix: str, stem: str
) -> tuple[list[str], int]:
    """The weight files (repo paths) a load of the folder `prefix` reads, from the repo's listing, and their size."""
    sizes = {
        path.removeprefix(prefix): size
        for path, size in listing.items()
        if path.startswith(prefix) and "/" not in path.removeprefix(prefix)
    }

    def read_index(index: str) -> dict[str, Any]:
        if (sizes.get(index) or 0) > MAX_CONFIG_BYTES:
            raise CheckpointError(
                CheckpointProblem.BROKEN_FILES, f"{repo_id!r} has a weight index larger than {MAX_CONFIG_BYTES} bytes."
            )
        folder = _snapshot(repo_id, pinned, [prefix + index])
        return read_json(folder / prefix / index, repo_id)

    plan = plan_weights(sizes, repo_id, read_index, stem)
    return [prefix + file for file in (*plan.index_files, *plan.files)], sum(sizes[file] or 0 for file in plan.files)
