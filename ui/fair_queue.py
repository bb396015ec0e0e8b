"""A fair order inside Gradio's queue: waiting events are served round robin across clients.

Gradio serves each concurrency group's waiting events first in, first out. Admission (`ui.admission`) bounds how
many events one client may have waiting (8), not where they stand: a client that posts its 8 the moment a slot frees
puts an honest client's one request behind all of them, and on a slow machine that is seconds (the honest
`/schedules` p95 was 19 s beside a client posting from many sessions).

`FairOrder` keeps, for every event it has seen queued, the client that posted it, and after each push reorders the
waiting events of that event's concurrency group by (how many of the same client's events wait before it, arrival).
Every client's first waiting event comes before any client's second, and so on; within one client the order of
arrival is kept, and among clients the earlier arrival goes first. An event never moves behind a later event of its
own client, so a client posting more only lengthens its own line.

Notation: for the waiting list e₀ … e_{n−1} (position i, client c(e_i)), rank_i = #{j < i : c(e_j) = c(e_i)}; the
new order sorts by (rank_i, i), a stable sort, so equal keys keep their positions.

The reorder runs in the event loop between awaits (Gradio's push and its `get_events` are synchronous there), so it
needs no lock; events whose client is not known (not pushed through the hook) count as one anonymous client.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any, TypeVar

Item = TypeVar("Item")
ANONYMOUS = "anonymous"


def round_robin(items: Sequence[Item], clients: Sequence[Hashable]) -> list[Item]:
    """`items` (waiting order, index 0 first) reordered so that the k-th waiting item of every client comes before
    the (k+1)-th of any client; ties keep their order. `clients[i]` is the client of `items[i]`."""
    if len(items) != len(clients):
        raise ValueError(f"need one client per item; got {len(items)} items and {len(clients)} clients")
    seen: Counter[Hashable] = Counter()
    keys = []
    for position, client in enumerate(clients):
        keys.append((seen[client], position))
        seen[client] += 1
    return [items[position] for _, position in sorted(keys)]


class FairOrder:
    """Reorders a Gradio queue's waiting events round robin across clients (`queued` after each push)."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self._client_of: dict[str, str] = {}

    def queued(self, event_id: str, client: str) -> None:
        """`event_id` was just queued for `client`: remember whose it is and reorder its concurrency group."""
        events = self._queue.event_ids_to_events
        self._client_of = {known: owner for known, owner in self._client_of.items() if known in events}
        event = events.get(event_id)
        if event is None:  # already taken by a worker, or answered from a cache
            return
        self._client_of[event_id] = client
        group = self._queue.event_queue_per_concurrency_id.get(event.concurrency_id)
        if group is None or len(group.queue) < 2:
            return
        waiting = list(group.queue)
        owners = [self._client_of.get(getattr(waiting_event, "_id", None), ANONYMOUS) for waiting_event in waiting]
        group.queue[:] = round_robin(waiting, owners)
