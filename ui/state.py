"""Per-session state: each session keeps its latest run, under a byte cap and a time to live.

Models are shared by the whole process (see `explorer.models.loader`); only per-user results live here. An entry
larger than the per-session cap is refused; when the total passes the global cap, the least recently used
sessions are dropped first. Expired entries are dropped on every access.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer.diffusion.trajectory import CompactTrajectory

MIB = 1 << 20


@dataclass(frozen=True)
class StoredRun:
    """What a session keeps of one run: the compact record (with its settings) and the model reference to reload."""

    compact: CompactTrajectory
    model: str

    @property
    def nbytes(self) -> int:
        return self.compact.nbytes


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
NO_RUN = "there is no finished run in this session (runs are kept 30 minutes): press Run first"


def session_of(request: Any | None) -> str:
    """The session a request belongs to (Gradio's session hash; "anonymous" when called without one)."""
    return getattr(request, "session_hash", None) or "anonymous"


def keep_run(request: Any | None, compact: CompactTrajectory, model: str) -> None:
    """Keep `compact` as this session's run (refused when it exceeds the per-session cap)."""
    STORE.put(session_of(request), StoredRun(compact, model), compact.nbytes)


def stored_run(request: Any | None) -> StoredRun:
    """This session's run, or ValueError asking the user to press Run."""
    run = STORE.get(session_of(request))
    if run is None:
        raise ValueError(NO_RUN)
    return run


def forget_session(request: gr.Request) -> None:
    """Drop a closed tab's stored run at once (API clients never close: the store's time to live frees theirs)."""
    STORE.drop(session_of(request))
