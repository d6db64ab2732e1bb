"""A cache bounded in bytes whose entries expire when unused, shared by every session of the server.

The Upload page keeps each photo's analysis here, so that redrawing it (emoji, bars, Grad-CAM) does not
analyse it again. ``st.cache_data`` bounds entries by count only and keeps them for ever: eight
48-megapixel photos held half a gigabyte after every visitor had left. Here the entries' bytes stay under
``max_bytes`` (least recently used first out; an entry larger than the whole bound is not kept), and an
entry unused for ``ttl_s`` seconds is dropped by a background sweep, whether or not anyone visits again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

Value = TypeVar("Value")


@dataclass
class _Entry(Generic[Value]):
    value: Value
    size: int
    last_used: float


class BoundedTTLCache(Generic[Value]):
    """Thread-safe ``key -> value`` store with a byte bound and an idle expiry (see the module)."""

    def __init__(self, max_bytes: int, ttl_s: float, clock: Callable[[], float] = time.monotonic,
                 sweep: bool = True) -> None:
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry[Value]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._sweep = sweep

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Value | None:
        """The value stored under ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            self._expire_locked()
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry.last_used = self._clock()
            self._entries.move_to_end(key)
            return entry.value

    def put(self, key: Hashable, value: Value, size: int) -> None:
        """Store ``value`` (``size`` bytes), dropping the least recently used entries to make room;
        a value larger than ``max_bytes`` is not stored."""
        with self._lock:
            self._remove_locked(key)
            if size > self.max_bytes:
                return
            self._entries[key] = _Entry(value, size, self._clock())
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._remove_locked(next(iter(self._entries)))
        self._start_sweeper()

    def get_or_compute(self, key: Hashable, compute: Callable[[], Value], size_of: Callable[[Value], int]) -> Value:
        """The cached value, or ``compute()`` stored with ``size_of(value)`` bytes."""
        value = self.get(key)
        if value is None:
            value = compute()
            self.put(key, value, size_of(value))
        return value

    def expire(self) -> None:
        """Drop the entries unused for ``ttl_s`` seconds (the sweep calls this)."""
        with self._lock:
            self._expire_locked()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _expire_locked(self) -> None:
        cutoff = self._clock() - self.ttl_s
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.last_used > cutoff:  # in order of use: the rest are younger
                return
            self._remove_locked(key)

    def _remove_locked(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size

    def _start_sweeper(self) -> None:
        """One daemon thread per cache, started with its first entry, expiring entries every
        ``ttl_s / 4`` seconds (at least one): memory comes back after the visitors leave."""
        if not self._sweep or self._sweeper is not None:
            return
        with self._lock:
            if self._sweeper is not None:
                return
            self._sweeper = threading.Thread(target=self._sweep_forever, name="fer-cache-sweep", daemon=True)
            self._sweeper.start()

    def _sweep_forever(self) -> None:
        while True:
            time.sleep(max(1.0, self.ttl_s / 4))
            self.expire()
