"""Fair admission for queued work: no client can fill the queue, and a refused job never enters it.

Every event posted to the queue is checked when it is posted, before Gradio queues it, by two ledgers:

- `EVENTS`, every event of any kind (views, the page's private routes such as `frames_after`, model work): one
  client may have at most `EVENTS_PER_CLIENT` waiting or running, all clients together `EVENTS_IN_ALL`, which
  leaves room in the queue for model work;
- `LEDGER`, events that spread `MODEL_WORK` (run, branch, open_frame, compare, decode, export): at most
  `PER_CLIENT` per client ("you already have 2 model jobs waiting or running (…): wait for them, or press Stop") and
  `IN_ALL` in all, well below the queue's size.

A client at its own limit is refused at once (HTTP 429). A client that holds a slot gets another only while a
third of all slots are free, so clients at their limit leave room for newcomers. When the total (or, for a client
holding a slot, two thirds of it) is reached, a new job waits in a fair line
(at most `WAIT_SECONDS`, one place per client): a freed slot goes to the waiting client that holds the fewest
slots, earliest first, so a few clients (six IPv6 /64s holding every model slot) cannot keep an honest client out
by posting again the moment a slot frees. A client holds the larger of its queued events and its work still
running (`working`, around each batch of an export or a decode): Gradio stops a cancelled generator only between
batches, so cancelling and posting again never runs more than the client's share at once.

A client is, on a hosted Space (SPACE_ID set), the address the Space's proxy appends last to X-Forwarded-For (a
client may put anything before it; IPv6 addresses count per /64, which one subscriber usually holds whole), or the
connection's address without that header; locally, the session hash. Keys are kept only as short digests: the
session hash is a bearer token and never stored, logged or echoed.

The mechanism is a hook on the push of the app's Gradio queue (`install`, called by `ui.launch.configure_queue`):
Gradio 6.31's event `validator=` cannot do this job (it runs the inputs' preprocessing before the queue, so bad
input would be refused there with Gradio's raw messages; it can only answer 400 or 422; and it never learns the
event's id, so it could not tell when the job ends). The hook learns each admitted job's event id, and a job's
slot is free as soon as Gradio has sent its completion or no longer holds that event: it finished, failed, was
cancelled (Stop), or its client went away (Gradio drops a closed page stream's queued events and stops its
generators at their next step; a completed event counts as gone, since Gradio forgets it only after a cleanup
and the page posts a chain's next event as soon as it reads the completion). A reservation that never became a
queued event expires after `UNBOUND_SECONDS`; any slot is freed after `MAX_SECONDS` whatever Gradio says, so no
bookkeeping fault can lock a client out for good.

After queueing, the same hook reorders the event's concurrency group round robin across clients
(`ui.fair_queue`): admission bounds how many events a client has waiting, the fair order decides where they stand.

The same hook refuses an unknown fn_index with 404 and a call missing arguments with a message (Gradio's own
answer to both is a bare error).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ui import gate
from ui.common import MODEL_WORK, running_on_space
from ui.fair_queue import FairOrder

PER_CLIENT = int(os.environ.get("EXPLORER_MODEL_JOBS_PER_CLIENT", "2"))
IN_ALL = int(os.environ.get("EXPLORER_MODEL_JOBS_IN_ALL", "12"))
EVENTS_PER_CLIENT = int(os.environ.get("EXPLORER_EVENTS_PER_CLIENT", "8"))
EVENTS_IN_ALL = int(os.environ.get("EXPLORER_EVENTS_IN_ALL", "48"))
WAIT_SECONDS = 20.0  # a job that finds no free slot waits this long, in a fair line, before it is refused
WAITING_AT_MOST = 64  # clients waiting for a slot at once (one place each); beyond that: refused at once
POLL_SECONDS = 0.2
UNBOUND_SECONDS = 120.0  # a reservation whose push never returned an event id
MAX_SECONDS = 3 * 3600.0  # longer than any run the app accepts (1000 steps at the largest batch on 2 CPU cores)
RETRY_AFTER_SECONDS = 10
MISSING_NAMES_SHOWN = 6


class Refused(Exception):
    """A model job that may not be queued now; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def too_many(limit: int) -> str:
    jobs = "job" if limit == 1 else "jobs"
    return (
        f"you already have {limit} model {jobs} waiting or running (runs, comparisons, exports): wait for them, "
        "or press Stop"
    )


def busy(limit: int) -> str:
    return (
        f"the server is busy: {limit} model jobs are waiting or running, the most it takes at once; "
        "try again in a minute (the Schedules and Posterior tabs still answer)"
    )


@dataclass
class Ticket:
    """One admitted model job: whose it is, since when, and (once queued) Gradio's event id."""

    client: str
    since: float
    event_id: str | None = None


@dataclass
class Waiter:
    """A client waiting in line for a slot: its place is decided by how many slots it holds, then by arrival."""

    client: str
    since: float


class Ledger:
    """Jobs waiting or running, per client: admit (at once, or after a fair wait), bind the event id, free when gone.

    A client holds the larger of its tickets (queued events) and its work still running (`working`: a cancelled
    event's thread finishing its batch), so cancelling and posting again never runs more than `per_client` at once.
    When every slot is taken a new job waits in line (`admit`), at most `wait_seconds`: a freed slot goes to the
    waiting client that holds the fewest slots, earliest first, so a few clients cannot keep every slot while
    another waits; a client that arrives while others wait with no more slots than it holds goes behind them.
    """

    def __init__(
        self,
        *,
        per_client: int = PER_CLIENT,
        in_all: int = IN_ALL,
        unbound_seconds: float = UNBOUND_SECONDS,
        max_seconds: float = MAX_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        too_many: Callable[[int], str] = too_many,
        busy: Callable[[int], str] = busy,
    ) -> None:
        if not 1 <= per_client <= in_all:
            raise ValueError(f"need 1 ≤ per_client ≤ in_all; got {per_client} and {in_all}")
        self.per_client, self.in_all = per_client, in_all
        self.unbound_seconds, self.max_seconds, self.wait_seconds = unbound_seconds, max_seconds, wait_seconds
        self._clock = clock
        self._too_many, self._busy = too_many, busy
        self._tickets: list[Ticket] = []
        self._working: Counter[str] = Counter()
        self._waiting: list[Waiter] = []
        self._lock = threading.Lock()

    # --- counting (under the lock) ---

    def _held(self, client: str) -> int:
        return max(sum(ticket.client == client for ticket in self._tickets), self._working[client])

    def _total(self) -> int:
        clients = {ticket.client for ticket in self._tickets} | set(self._working)
        return sum(self._held(client) for client in clients)

    def _ahead(self, client: str, waiter: Waiter | None) -> bool:
        """Whether another waiting client comes before `client` (its own `waiter`, or a new arrival)."""
        mine = (self._held(client), waiter.since if waiter else float("inf"))  # a new arrival comes last
        return any((self._held(other.client), other.since) < mine for other in self._waiting if other.client != client)

    def _grant(self, client: str, waiter: Waiter | None) -> Ticket | None:
        held = self._held(client)
        if held >= self.per_client:
            raise Refused(self._too_many(self.per_client))
        # A client's first slot may be any free one; a further slot only while a third of all are still free, so
        # a few clients at their limit leave room for newcomers at once (six /64s took all 12 model slots).
        room = self.in_all - (self.in_all // 3 if held else 0)
        if self._total() >= room or self._ahead(client, waiter):
            return None
        ticket = Ticket(client, self._clock())
        self._tickets.append(ticket)
        return ticket

    # --- admission ---

    def reserve(self, client: str) -> Ticket:
        """A slot for `client` now, or `Refused`: the client's own limit first (its own message), then the total."""
        with self._lock:
            ticket = self._grant(client, None)
        if ticket is None:
            raise Refused(self._busy(self.in_all))
        return ticket

    async def admit(self, client: str, alive: Callable[[str], bool]) -> Ticket:
        """A slot for `client`: at once when one is free and nobody waits before it, else after a fair wait of at
        most `wait_seconds`; `Refused` at the client's own limit, when it already waits, or when the wait ends."""
        self.sweep(alive)
        with self._lock:
            ticket = self._grant(client, None)
            if ticket is not None:
                return ticket
            if any(other.client == client for other in self._waiting) or len(self._waiting) >= WAITING_AT_MOST:
                raise Refused(self._busy(self.in_all))
            waiter = Waiter(client, self._clock())
            self._waiting.append(waiter)
        try:
            deadline = self._clock() + self.wait_seconds
            while self._clock() < deadline:
                await asyncio.sleep(POLL_SECONDS)
                self.sweep(alive)
                with self._lock:
                    ticket = self._grant(client, waiter)
                if ticket is not None:
                    return ticket
            raise Refused(self._busy(self.in_all))
        finally:
            with self._lock:
                self._waiting = [other for other in self._waiting if other is not waiter]

    @contextmanager
    def working(self, client: str) -> Iterator[None]:
        """Count a batch of `client`'s work while it runs (a cancelled event's thread still holds its slot)."""
        with self._lock:
            self._working[client] += 1
        try:
            yield
        finally:
            with self._lock:
                self._working[client] -= 1
                if self._working[client] <= 0:
                    del self._working[client]

    def bind(self, ticket: Ticket, event_id: str) -> None:
        """The job was queued as `event_id`: from now on it holds its slot while that event is alive."""
        with self._lock:
            ticket.event_id = event_id

    def release(self, ticket: Ticket) -> None:
        """Free the slot now (the job was not queued after all); releasing twice is harmless."""
        with self._lock:
            self._tickets = [held for held in self._tickets if held is not ticket]

    def sweep(self, alive: Callable[[str], bool]) -> None:
        """Free the slots of jobs whose event is gone (`alive(event_id)` false), of reservations never bound
        within `unbound_seconds`, and of anything older than `max_seconds`."""
        now = self._clock()
        with self._lock:
            self._tickets = [ticket for ticket in self._tickets if self._holds(ticket, now, alive)]

    def _holds(self, ticket: Ticket, now: float, alive: Callable[[str], bool]) -> bool:
        age = now - ticket.since
        if age > self.max_seconds:
            return False
        if ticket.event_id is None:
            return age <= self.unbound_seconds
        return alive(ticket.event_id)

    def jobs(self, client: str | None = None) -> int:
        """Slots held, by one client or by everyone (tickets, or work still running where that is more)."""
        with self._lock:
            return self._total() if client is None else self._held(client)

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def clear(self) -> None:
        with self._lock:
            self._tickets.clear()
            self._waiting.clear()


def too_many_events(limit: int) -> str:
    return f"you already have {limit} requests waiting or running: wait for their answers"


def events_busy(limit: int) -> str:
    return f"the server is busy: {limit} requests are waiting or running, the most it takes at once; try again soon"


LEDGER = Ledger()
# Every queued event, model work or not (views, the page's private frame routes): one client cannot fill the queue.
EVENTS = Ledger(
    per_client=EVENTS_PER_CLIENT, in_all=EVENTS_IN_ALL, wait_seconds=10.0, too_many=too_many_events, busy=events_busy
)


def client_of(request: Any) -> str:
    """The client of a `gr.Request` inside a handler (what the admission counted it as)."""
    return client_of_request(request, getattr(request, "session_hash", None))


@contextmanager
def working(request: Any) -> Iterator[None]:
    """Inside a model handler, around one batch of work: the batch holds its client's slot while it runs, even when
    its event was cancelled (Gradio stops a generator only between batches)."""
    with LEDGER.working(client_of(request)):
        yield


# --- who is the client --------------------------------------------------------------------------------------


def last_forwarded(values: Iterable[str]) -> str | None:
    """The last address of X-Forwarded-For (every header line joined, as a proxy chain reads them), or None."""
    entries = [entry.strip() for value in values for entry in value.split(",")]
    entries = [entry for entry in entries if entry]
    return entries[-1] if entries else None


def address_key(address: str | None) -> str:
    """An address as a client key: IPv4 whole, IPv6 by its /64, anything unparsable as its first 100 characters."""
    if not address:
        return "address:unknown"
    try:
        parsed = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return "address:" + address[:100]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return f"address:{parsed.ipv4_mapped}"
        return f"address:{ipaddress.ip_network(f'{parsed}/64', strict=False)}"
    return f"address:{parsed}"


def client_key(headers: Any, host: str | None, session_hash: str | None, *, on_space: bool) -> str:
    """Who posted a job, as a short digest: on a Space the proxy's last X-Forwarded-For address (else the
    connection's address); locally the session hash (else the connection's address)."""
    if on_space:
        forwarded = headers.getlist("x-forwarded-for") if hasattr(headers, "getlist") else []
        key = address_key(last_forwarded(forwarded) or host)
    else:
        key = f"session:{session_hash}" if session_hash else address_key(host)
    return hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=8).hexdigest()


def client_of_request(request: Any, session_hash: str | None) -> str:
    """`client_key` for a Starlette request."""
    host = request.client.host if getattr(request, "client", None) else None
    return client_key(getattr(request, "headers", None), host, session_hash, on_space=running_on_space())


# --- the hook -------------------------------------------------------------------------------------------------


def is_model_work(block_fn: Any) -> bool:
    return getattr(block_fn, "concurrency_id", None) == MODEL_WORK["concurrency_id"]


def _input_name(block: Any) -> str:
    return str(getattr(block, "label", None) or getattr(block, "elem_id", None) or type(block).__name__.lower())


def missing_arguments(block_fn: Any, given: list[Any] | None) -> str | None:
    """A message when a call sends fewer values than the event has inputs (Gradio answers that with none)."""
    inputs = list(block_fn.inputs or [])
    count = len(given or [])
    if getattr(block_fn, "batch", False) or count >= len(inputs):
        return None
    # An API call may leave out the inputs the API does not show (State): Gradio fills those in when the count of
    # the others is right, so a shorter list is short of the shown ones.
    shown_inputs = [block for block in inputs if not getattr(block, "skip_api", False)]
    expected = shown_inputs if count < len(shown_inputs) else inputs
    name = f"/{block_fn.api_name}" if block_fn.api_name else "this event"
    missing = [_input_name(block) for block in expected[count:]]
    shown = ", ".join(missing[:MISSING_NAMES_SHOWN]) + (", …" if len(missing) > MISSING_NAMES_SHOWN else "")
    values = "value" if len(expected) == 1 else "values"
    return f"{name} takes {len(expected)} {values} and got {count}: missing {shown} (the API page lists them in order)"


def install(demo: Any, ledger: Ledger = LEDGER, events: Ledger = EVENTS) -> None:
    """Check every push to `demo`'s queue (call after `demo.queue(...)`, which makes a new queue each time)."""
    queue = demo._queue
    original = queue.push
    if getattr(original, "admission_ledger", None) is ledger:
        return
    table = queue.event_ids_to_events  # Gradio's live events; its absence (another Gradio) fails at start-up
    if not isinstance(table, dict):
        raise TypeError("this Gradio's queue keeps no event table: ui.admission needs gradio 6.31's queue")

    fair = FairOrder(queue)
    completed = Completed()
    send = queue.send_message

    def send_message(event: Any, message: Any) -> Any:
        if getattr(message, "msg", None) == "process_completed":
            completed.note(event._id)
        return send(event, message)

    queue.send_message = send_message
    queue.admission_completed = completed

    def alive(event_id: str) -> bool:
        return _alive(queue, event_id)

    async def push(body: Any, request: Any, username: str | None) -> Any:
        block_fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
        if body.fn_index is not None and block_fn is None:
            raise gate.refuse(404, "there is no such event (fn_index)", "fn_index")
        if block_fn is not None and (message := missing_arguments(block_fn, body.data)):
            raise gate.refuse(400, message, "arguments")
        if block_fn is None:
            return await original(body, request, username)
        client = client_of_request(request, body.session_hash)
        tickets: list[tuple[Ledger, Ticket]] = []
        try:
            for book in (events, ledger) if is_model_work(block_fn) else (events,):
                tickets.append((book, await book.admit(client, alive)))
        except Refused as refusal:
            for book, ticket in tickets:
                book.release(ticket)
            raise gate.refuse(429, refusal.message, "admission", retry_after=RETRY_AFTER_SECONDS) from None
        try:
            success, event_id, state = await original(body, request, username)
        except BaseException:
            for book, ticket in tickets:
                book.release(ticket)
            raise
        for book, ticket in tickets:
            if success and isinstance(event_id, str):
                book.bind(ticket, event_id)
            else:
                book.release(ticket)
        if success and isinstance(event_id, str):
            fair.queued(event_id, client)  # round robin across clients inside Gradio's queue (ui.fair_queue)
        return success, event_id, state

    push.admission_ledger = ledger  # type: ignore[attr-defined]
    queue.push = push


def held(demo: Any, client: str | None = None, ledger: Ledger = LEDGER) -> int:
    """Model jobs waiting or running now (one client's, or everyone's), after freeing those Gradio has let go."""
    queue = demo._queue
    ledger.sweep(lambda event_id: _alive(queue, event_id))
    return ledger.jobs(client)


def _alive(queue: Any, event_id: str) -> bool:
    """Whether Gradio's `queue` still holds the event `event_id` and has not yet answered it completed."""
    completed = getattr(queue, "admission_completed", ())
    return event_id in queue.event_ids_to_events and event_id not in completed


class Completed:
    """The ids of the last `limit` events whose completion Gradio has sent. Gradio forgets an event only after its
    cleanup (iterators, analytics, a thread hop), while the page posts the next event of a chain (`.then`) as soon
    as it reads the completion: counted until then, a finished job would get its own successor refused."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._ids: dict[str, None] = {}  # insertion-ordered: the oldest first
        self._lock = threading.Lock()

    def note(self, event_id: str) -> None:
        with self._lock:
            self._ids[event_id] = None
            while len(self._ids) > self.limit:
                del self._ids[next(iter(self._ids))]

    def __contains__(self, event_id: object) -> bool:
        with self._lock:
            return event_id in self._ids
