"""Gradio's per-session state, bounded: live sessions per client and in all, checked before Gradio allocates one.

Gradio keeps a `SessionState` (a copy of the page's configuration, about 0.33 MiB) for every session hash it is
sent, created on first sight by any event, API call or server-function call, and kept for up to 10,000 sessions.
A client that sends a fresh session hash with every request grows the server by that much each time.

`SessionGate` (ASGI middleware, installed by `ui.launch`) notes who sends each request (on a Space, the client
key of `ui.admission`: the proxy's last X-Forwarded-For address, IPv6 by its /64) and, on its first request, gives
the app's state holder a bounded `__getitem__` (`GatedStates`). A new session is then admitted by `SessionLedger`:

- a client with `PER_CLIENT` live sessions first gives up its own least recently used one that has been idle
  `IDLE_SECONDS` (its page state is made afresh if it comes back); with none idle, the new session is refused
  (429, one sentence);
- with `IN_ALL` live sessions in all, the least recently used idle session of the client holding the most goes;
  with none idle, the new session is refused (503).

Locally (no SPACE_ID) a client is not known from the address, so only the global cap applies.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from gradio.state_holder import StateHolder
from starlette.datastructures import Headers

from ui import gate
from ui.admission import client_key
from ui.common import running_on_space

PER_CLIENT = int(os.environ.get("EXPLORER_SESSIONS_PER_CLIENT", "64"))
IN_ALL = int(os.environ.get("EXPLORER_SESSIONS_IN_ALL", "2000"))
IDLE_SECONDS = 5.0  # a session unused this long may give its place to a new one
LOCAL = "local"  # the one client of a local server (sessions are not told apart by address there)

CLIENT: ContextVar[str | None] = ContextVar("explorer_session_client", default=None)


class SessionLedger:
    """Live sessions per client, least recently used first; `admit` decides, before Gradio allocates, which old
    session goes (returned, for the caller to drop) or refuses the new one."""

    def __init__(
        self,
        *,
        per_client: int = PER_CLIENT,
        in_all: int = IN_ALL,
        idle_seconds: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_client, self.in_all, self.idle_seconds = per_client, in_all, idle_seconds
        self._clock = clock
        self._owners: dict[str, str] = {}
        self._by_client: dict[str, OrderedDict[str, float]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._owners)

    def sessions(self, client: str) -> int:
        with self._lock:
            return len(self._by_client.get(client, ()))

    def touch(self, session: str) -> None:
        with self._lock:
            client = self._owners.get(session)
            if client is not None:
                self._by_client[client][session] = self._clock()
                self._by_client[client].move_to_end(session)

    def forget(self, session: str) -> None:
        with self._lock:
            self._forget(session)

    def _forget(self, session: str) -> None:
        client = self._owners.pop(session, None)
        if client is not None:
            self._by_client[client].pop(session, None)
            if not self._by_client[client]:
                del self._by_client[client]

    def _idle_oldest(self, client: str, now: float) -> str | None:
        sessions = self._by_client.get(client)
        if not sessions:
            return None
        session, used = next(iter(sessions.items()))
        return session if now - used >= self.idle_seconds else None

    def admit(self, session: str, client: str) -> list[str]:
        """Admit a new `session` of `client`: the sessions to drop to make room (its own oldest idle one, or the
        oldest idle one of the client holding the most), or a refusal (`HTTPException` 429 or 503)."""
        with self._lock:
            now = self._clock()
            dropped: list[str] = []
            if client != LOCAL and len(self._by_client.get(client, ())) >= self.per_client:
                oldest = self._idle_oldest(client, now)
                if oldest is None:
                    raise gate.refuse(
                        429,
                        f"you already have {self.per_client} sessions open from your address: close a tab, or "
                        "reuse a session",
                        "sessions",
                        retry_after=int(self.idle_seconds) + 1,
                    )
                self._forget(oldest)
                dropped.append(oldest)
            if len(self._owners) >= self.in_all:
                largest = sorted(self._by_client, key=lambda who: -len(self._by_client[who]))
                oldest = next((s for who in largest if (s := self._idle_oldest(who, now)) is not None), None)
                if oldest is None:
                    raise gate.refuse(
                        503,
                        f"the server holds as many sessions as it can ({self.in_all}): try again in a minute",
                        "sessions",
                        retry_after=int(self.idle_seconds) + 1,
                    )
                self._forget(oldest)
                dropped.append(oldest)
            self._owners[session] = client
            self._by_client.setdefault(client, OrderedDict())[session] = now
            return dropped


LEDGER = SessionLedger()


class GatedStates(StateHolder):
    """Gradio's state holder whose first sight of a session hash asks `LEDGER` first (the class of the app's own
    holder is swapped for this one: its data stay where they are)."""

    ledger: SessionLedger = LEDGER

    def __getitem__(self, session_id: str) -> Any:
        client = CLIENT.get()
        if session_id not in self.session_data:
            if client is not None:  # None: Gradio's own tasks (the queue), for sessions admitted already
                for old in self.ledger.admit(session_id, client):
                    with self.lock:
                        self.session_data.pop(old, None)
                        self.time_last_used.pop(old, None)
        else:
            self.ledger.touch(session_id)
        return super().__getitem__(session_id)


def gate_states(holder: Any) -> None:
    """Give Gradio's state holder the bounded `__getitem__` (once)."""
    if type(holder) is StateHolder:
        holder.__class__ = GatedStates


class SessionGate:
    """ASGI middleware: note the request's client for `GatedStates` and gate the app's state holder."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        holder = getattr(scope.get("app"), "state_holder", None)
        if holder is not None:
            gate_states(holder)
        if running_on_space():
            host = scope["client"][0] if scope.get("client") else None
            client = client_key(Headers(scope=scope), host, None, on_space=True)
        else:
            client = LOCAL
        token = CLIENT.set(client)
        try:
            await self.app(scope, receive, send)
        finally:
            CLIENT.reset(token)
