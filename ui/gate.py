"""Routes that are not queued: limited per client with a 429, refused in one sentence, logged sparingly.

Gradio runs a component's server functions (`/gradio_api/component_server`, the frame player's `fetch_frames`)
outside the queue, its workers and `ui.admission`. Such a route must be cheap by construction and limited per
client: a `Limiter` gives each client a token bucket (calls per second, with a burst) and a cap on calls running
at once, and all clients together a cap on calls running at once; past any of them the call is answered 429 with
one sentence, before any work.

A refusal is an answer, not a fault: `refuse` makes the HTTP error (one line, no traceback) and `RefusalLog` writes
at most one log line per kind of refusal every `LOG_EVERY` seconds, with how many it left out, so a flood of bad
requests cannot fill the log. `QuietErrors` (ASGI middleware, installed by `ui.launch`) turns an exception that
escapes the component-server route (an unknown component, a malformed body) into a 400 with one sentence instead of
a 500, a reset connection and a traceback per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from starlette.responses import JSONResponse

LOG_EVERY = 10.0  # seconds between two log lines of one kind of refusal
LOGGER = logging.getLogger("explorer.refusals")
COMPONENT_SERVER = ("/gradio_api/component_server", "/gradio_api/component_server/")
BAD_SERVER_CALL = "this server function call is not valid (unknown component or function, or a malformed body)"


class RefusalLog:
    """One log line per kind of refusal every `every` seconds, saying how many of that kind it left out."""

    def __init__(self, every: float = LOG_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self._clock = every, clock
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def note(self, kind: str, sentence: str) -> None:
        with self._lock:
            now = self._clock()
            if now - self._last.get(kind, -float("inf")) < self.every:
                self._skipped[kind] += 1
                return
            skipped, self._skipped[kind] = self._skipped[kind], 0
            self._last[kind] = now
        more = f" (and {skipped} more like it since the last line)" if skipped else ""
        LOGGER.warning("refused %s: %s%s", kind, sentence[:200], more)


REFUSALS = RefusalLog()


def refuse(status: int, sentence: str, kind: str, *, retry_after: int | None = None) -> HTTPException:
    """The HTTP error for a refused request (raise it): `status` with `sentence` as its detail; noted in the log."""
    REFUSALS.note(kind, sentence)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return HTTPException(status_code=status, detail=sentence, headers=headers)


@dataclass
class Bucket:
    tokens: float
    stamp: float
    running: int = 0


class Limiter:
    """Per-client token buckets and running caps for one unqueued route (`use` is a context manager).

    A client may start `rate` calls per second on average, `burst` at once after a pause, and have `per_client`
    running at once; all clients together `in_all` running at once. Idle clients' buckets are forgotten."""

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        burst: int,
        per_client: int,
        in_all: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.rate, self.burst = name, rate, burst
        self.per_client, self.in_all = per_client, in_all
        self._clock = clock
        self._buckets: dict[str, Bucket] = {}
        self._running = 0
        self._lock = threading.Lock()

    def _forget_idle(self, now: float) -> None:
        if len(self._buckets) > 4096:
            full = [key for key, b in self._buckets.items() if not b.running and now - b.stamp > self.burst / self.rate]
            for key in full:
                del self._buckets[key]

    def take(self, client: str) -> None:
        """Start a call for `client`, or raise a 429 `HTTPException` saying which limit it met."""
        with self._lock:
            now = self._clock()
            self._forget_idle(now)
            bucket = self._buckets.setdefault(client, Bucket(float(self.burst), now))
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if bucket.running >= self.per_client:
                sentence = f"{self.name}: you already have {bucket.running} running; wait for it"
            elif bucket.tokens < 1.0:
                sentence = f"{self.name}: at most {self.rate:g} calls per second; try again in a moment"
            elif self._running >= self.in_all:
                sentence = f"{self.name}: the server is busy with {self._running} such calls; try again in a moment"
            else:
                bucket.tokens -= 1.0
                bucket.running += 1
                self._running += 1
                return
        raise refuse(429, sentence, self.name, retry_after=1)

    def done(self, client: str) -> None:
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is not None and bucket.running:
                bucket.running -= 1
            self._running = max(0, self._running - 1)

    @contextmanager
    def use(self, client: str) -> Iterator[None]:
        self.take(client)
        try:
            yield
        finally:
            self.done(client)

    def running(self) -> int:
        with self._lock:
            return self._running


class QuietErrors:
    """ASGI middleware: an exception escaping Gradio's component-server route is answered 400 with one sentence
    (Gradio lets an unknown component id raise KeyError: a 500, a reset connection and a traceback per request)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("path") not in COMPONENT_SERVER:
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            if message.get("type") == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if started:
                raise
            REFUSALS.note("server function", BAD_SERVER_CALL)
            await JSONResponse({"detail": BAD_SERVER_CALL}, status_code=400)(scope, receive, send)
