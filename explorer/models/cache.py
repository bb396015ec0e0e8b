"""A bounded, thread-safe, process-wide store of loaded models, so every user of a server shares one copy.

Least recently used entries go first once `max_entries` is reached. Concurrent requests for one key wait
for a single load instead of loading the same weights twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Model = TypeVar("Model")


class ModelCache(Generic[Model]):
    """An LRU cache of loaded models keyed by, e.g., (source, revision, device, dtype)."""

    def __init__(self, max_entries: int = 4) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1; got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Model] = OrderedDict()
        self._lock = threading.Lock()  # guards _entries and _loading
        self._loading: dict[Hashable, threading.Lock] = {}  # one lock per key being loaded

    def _hit(self, key: Hashable) -> Model | None:
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        return None

    def get_or_load(self, key: Hashable, loader: Callable[[], Model]) -> Model:
        """The cached model for `key`, or `loader()`'s result, stored (evicting the oldest if full)."""
        with self._lock:
            if (hit := self._hit(key)) is not None:
                return hit
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:  # one loader per key; the others wait here, then find the entry
            with self._lock:
                if (hit := self._hit(key)) is not None:
                    return hit
            try:
                value = loader()
                with self._lock:
                    self._entries[key] = value
                    while len(self._entries) > self.max_entries:
                        self._entries.popitem(last=False)
            finally:  # a failed load leaves nothing behind; the next request tries again
                with self._lock:
                    if self._loading.get(key) is key_lock:
                        del self._loading[key]
            return value

    def peek(self, key: Hashable) -> Model | None:
        """The cached model for `key`, or None; never loads and does not count as a use."""
        with self._lock:
            return self._entries.get(key)

    def loading(self) -> int:
        """How many keys are being loaded right now."""
        with self._lock:
            return len(self._loading)

    def keys(self) -> tuple[Hashable, ...]:
        """The cached keys, least recently used first."""
        with self._lock:
            return tuple(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
