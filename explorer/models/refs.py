"""Model references: what a user may type, checked before anything touches the disk or the network.

A reference is one of
- a bundled checkpoint's name: a folder under `pretrained/` at the repository root (e.g. "moons-eps");
- a Hub model id "owner/name", with an optional pinned `revision`;
- a local folder (a `Path`, or a string starting with "/", "./", "../" or "~"), accepted only with
  `allow_local=True` and never when `SPACE_ID` is set (a hosted Space); `local_folders_allowed` says when an app
  should allow them. Every refusal of a local path reads the same (`LOCAL_UNLOADABLE`) and names no server path.
Pure string checks, plus listing `pretrained/` for bundled names.
"""

from __future__ import annotations

import ipaddress
import os
import re
from enum import StrEnum
from pathlib import Path

from explorer.models.errors import CheckpointError, CheckpointProblem

PRETRAINED_DIR = Path(__file__).resolve().parents[2] / "pretrained"
MAX_REPO_ID_LENGTH = 96
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_BUNDLED_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
_LOCAL_PREFIXES = ("/", "./", "../", "~", "\\")


class Source(StrEnum):
    """Where a checkpoint comes from."""

    BUNDLED = "bundled"
    HUB = "hub"
    LOCAL = "local"


LOCAL_UNLOADABLE = (
    "That local folder cannot be loaded: give a folder on this machine, readable by the app, that holds a diffusers "
    "checkpoint (config.json, scheduler_config.json and safetensors weights, all inside the folder)."
)
LOOPBACK_HOSTS = ("localhost",)  # and every address ipaddress calls loopback: 127.0.0.0/8, ::1


def local_unloadable() -> CheckpointError:
    """The one refusal for every local path that is not a loadable checkpoint folder, whatever the reason.

    It says nothing about the file system (whether the path exists, is a file, is readable), so a caller
    cannot probe the server's disk with it.
    """
    return CheckpointError(CheckpointProblem.NOT_FOUND, LOCAL_UNLOADABLE)


def local_folders_allowed(server_name: str | None, flag: bool) -> bool:
    """Whether the app may accept local folders: never on a hosted Space (SPACE_ID set); else when `flag` is set,
    or when the server listens on loopback only (127.0.0.1, ::1, localhost), where nobody else can reach it.

    0.0.0.0, a LAN address and None (address unknown) are not loopback.
    """
    if os.environ.get("SPACE_ID"):
        return False
    if flag is True:
        return True
    if not isinstance(server_name, str):
        return False
    host = server_name.strip().removeprefix("[").removesuffix("]").lower()
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
                "That looks like a local folder, and local folders are accepted only when the app runs on your own "
                "machine with local loading allowed, never on a hosted Space.",
            )
        if revision is not None:
            raise _invalid(str(text), "a revision applies to Hub ids only")
        try:
            return Source.LOCAL, str(Path(text).expanduser().resolve())
        except (OSError, RuntimeError, ValueError):  # "~nobody", a symlink loop, a NUL byte
            raise local_unloadable() from None
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
