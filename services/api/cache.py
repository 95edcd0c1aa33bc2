"""A small in-process cache for what nearly every request looks up: the caller's project, a dataset."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Entries expire `ttl` seconds after they were stored; past `max_entries`, the oldest stored goes first.

    Each api process has its own: a change elsewhere is seen here only once the entry expires.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if time.monotonic() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (time.monotonic() + self._ttl, value)
        while len(self._entries) > self._max_entries:
            del self._entries[next(iter(self._entries))]
