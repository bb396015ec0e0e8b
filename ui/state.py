"""Per-session state: each session keeps its latest run and the branch made from it, under a byte cap and a TTL.

Models are shared by the whole process (see `explorer.models.loader`); only per-user results live here. An entry
larger than the per-session cap is refused; when the total passes the global cap, the least recently used
sessions are dropped first. Expired entries are dropped on every access.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Generic, TypeVar

import gradio as gr

from explorer.diffusion.trajectory import CompactTrajectory
from ui.values import RunValues

MIB = 1 << 20


@dataclass(frozen=True)
class StoredRun:
    """What a session keeps of one run: the compact record (with its settings), the model reference to reload, and
    an unguessable key by which the page fetches frames it does not hold (`ui.frames`)."""

    compact: CompactTrajectory
    model: str
    key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    values: RunValues | None = None  # the Run controls it was made with (prompt, class label, latent size): branches

    @property
    def nbytes(self) -> int:
        return self.compact.nbytes


class Which(StrEnum):
    """Which of a session's two runs the page shows and steps through."""

    RUN = "run"
    BRANCH = "branch"


@dataclass(frozen=True)
class SessionRuns:
    """A session's run, the branch made from it (None until Branch finishes) and which one is shown.

    `compact` and `model` are the shown one's: every reader of "this session's run" (stepping, export, the 2-D
    cloud) follows the selector. `branch_from` is the branch's first recomputed step (0-based run position).
    """

    run: StoredRun
    branch: StoredRun | None = None
    branch_from: int = 0
    shown: Which = Which.RUN

    @property
    def current(self) -> StoredRun:
        return self.branch if self.shown is Which.BRANCH and self.branch is not None else self.run

    @property
    def compact(self) -> CompactTrajectory:
        return self.current.compact

    @property
    def model(self) -> str:
        return self.current.model

    @property
    def nbytes(self) -> int:
        return self.run.nbytes + (self.branch.nbytes if self.branch is not None else 0)

    def stored(self) -> tuple[StoredRun, ...]:
        return (self.run,) if self.branch is None else (self.run, self.branch)


class SessionStore:
    """A thread-safe map session id → value with per-entry and total byte caps and a time to live."""

    def __init__(
        self,
        *,
        max_bytes_per_session: int = 96 * MIB,
        max_total_bytes: int = 768 * MIB,
        time_to_live: float = 1800.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes_per_session = max_bytes_per_session
        self.max_total_bytes = max_total_bytes
        self.time_to_live = time_to_live
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        for key in [k for k, (stamp, _, _) in self._entries.items() if now - stamp > self.time_to_live]:
            del self._entries[key]

    def put(self, session: str, value: Any, nbytes: int) -> None:
        """Keep `value` for `session` (replacing its previous one); ValueError when it exceeds the per-session cap."""
        if nbytes > self.max_bytes_per_session:
            raise ValueError(
                f"this run needs {nbytes / MIB:.1f} MiB but a session may keep at most "
                f"{self.max_bytes_per_session / MIB:.0f} MiB: use fewer steps or a smaller batch"
            )
        with self._lock:
            now = self._clock()
            self._expire(now)
            self._entries.pop(session, None)
            self._entries[session] = (now, nbytes, value)
            while self.total_bytes > self.max_total_bytes and len(self._entries) > 1:
                self._entries.popitem(last=False)  # least recently used first

    def get(self, session: str) -> Any | None:
        """The session's value, or None when it has none or it expired; a hit refreshes its time to live."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            entry = self._entries.pop(session, None)
            if entry is None:
                return None
            self._entries[session] = (now, entry[1], entry[2])
            return entry[2]

    def find(self, test: Callable[[Any], bool]) -> Any | None:
        """The first live value for which `test` holds (no refresh of its time to live), or None."""
        with self._lock:
            self._expire(self._clock())
            return next((value for _, _, value in self._entries.values() if test(value)), None)

    def drop(self, session: str) -> None:
        """Forget a session (the tab closed)."""
        with self._lock:
            self._entries.pop(session, None)

    @property
    def total_bytes(self) -> int:
        return sum(nbytes for _, nbytes, _ in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


STORE = SessionStore()
K = TypeVar("K")
V = TypeVar("V")


class Kept(Generic[K, V]):
    """The last `size` values made by key, shared by every session and thread-safe: the least recently used goes
    first. A value is made outside the lock (two threads asking for one key at once may both make it)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value kept for `key`, else `make()`, kept."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = make()
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


NO_RUN = "there is no finished run in this session (runs are kept 30 minutes): press Run first"


def session_of(request: Any | None) -> str:
    """The session a request belongs to (Gradio's session hash; "anonymous" when called without one)."""
    return getattr(request, "session_hash", None) or "anonymous"


def keep_run(request: Any | None, compact: CompactTrajectory, model: str, values: RunValues | None = None) -> StoredRun:
    """Keep `compact` as this session's run (its earlier run and branch go); refused when over the per-session cap.
    `values`: the Run controls it was made with."""
    stored = StoredRun(compact, model, values=values)
    runs = SessionRuns(stored)
    STORE.put(session_of(request), runs, runs.nbytes)
    _note_outcome(request, Outcome.KEPT)
    return stored


def keep_branch(
    request: Any | None, compact: CompactTrajectory, model: str, from_index: int, values: RunValues | None = None
) -> StoredRun:
    """Keep `compact` beside this session's run as its branch from step `from_index` (a previous branch goes), and
    show it; refused when run and branch together exceed the per-session cap."""
    stored = StoredRun(compact, model, values=values)
    runs = replace(session_runs(request), branch=stored, branch_from=from_index, shown=Which.BRANCH)
    STORE.put(session_of(request), runs, runs.nbytes)
    _note_outcome(request, Outcome.KEPT)
    return stored


class Outcome(StrEnum):
    """How a session's latest computation (a run or a branch) ended, for what Stop says."""

    RUNNING = "running"
    KEPT = "kept"
    NOT_KEPT = "not kept"  # stopped, failed, or refused before it was kept


MAX_OUTCOMES = 4096  # sessions remembered; the oldest are forgotten first (Stop then says only what it knows)
_OUTCOMES: OrderedDict[str, Outcome] = OrderedDict()
_OUTCOMES_LOCK = threading.Lock()


def _note_outcome(request: Any | None, outcome: Outcome) -> None:
    with _OUTCOMES_LOCK:
        _OUTCOMES[session_of(request)] = outcome
        _OUTCOMES.move_to_end(session_of(request))
        while len(_OUTCOMES) > MAX_OUTCOMES:
            _OUTCOMES.popitem(last=False)


def last_outcome(request: Any | None) -> Outcome | None:
    """How this session's latest run or branch ended (RUNNING while it computes), or None when not known."""
    with _OUTCOMES_LOCK:
        return _OUTCOMES.get(session_of(request))


@contextmanager
def computing(request: Any | None) -> Iterator[None]:
    """Mark this session's run or branch as running until it is kept (`keep_run`, `keep_branch`); leaving
    without that (Stop cancels the generator, or an error) marks it not kept."""
    _note_outcome(request, Outcome.RUNNING)
    try:
        yield
    finally:
        if last_outcome(request) is Outcome.RUNNING:
            _note_outcome(request, Outcome.NOT_KEPT)


def session_runs(request: Any | None) -> SessionRuns:
    """This session's run and branch, or ValueError asking the user to press Run."""
    runs = STORE.get(session_of(request))
    if runs is None:
        raise ValueError(NO_RUN)
    return runs


def stored_run(request: Any | None) -> StoredRun:
    """This session's current run (the one its page shows: the run, or its branch when that is selected)."""
    return session_runs(request).current


def show(request: Any | None, which: Which) -> SessionRuns:
    """Show (and step through) the run or its branch; ValueError when there is no branch yet."""
    runs = session_runs(request)
    if which is Which.BRANCH and runs.branch is None:
        raise ValueError("there is no branch yet: press Branch first")
    runs = replace(runs, shown=which)
    STORE.put(session_of(request), runs, runs.nbytes)
    return runs


def run_by_key(key: Any) -> StoredRun:
    """The stored run (of any live session) with this key: how the page fetches frames it does not hold."""
    if not isinstance(key, str) or not key:
        raise ValueError("key must name a stored run")
    runs = STORE.find(lambda value: any(run.key == key for run in value.stored()))
    if runs is None:
        raise ValueError(NO_RUN)
    return next(run for run in runs.stored() if run.key == key)


def forget_session(request: gr.Request) -> None:
    """Drop a closed tab's stored run at once (API clients never close: the store's time to live frees theirs)."""
    STORE.drop(session_of(request))
