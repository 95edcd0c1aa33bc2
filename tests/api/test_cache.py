from __future__ import annotations

import pytest

from services.api import cache
from services.api.cache import TtlCache


def test_entries_expire_after_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 100.0
    monkeypatch.setattr(cache.time, "monotonic", lambda: now)
    entries: TtlCache[str, int] = TtlCache(ttl=30)
    entries.put("key", 1)
    now = 129.9
    assert entries.get("key") == 1
    now = 130.0
    assert entries.get("key") is None
    assert entries.get("never stored") is None


def test_the_oldest_entry_goes_first_when_full() -> None:
    entries: TtlCache[str, int] = TtlCache(ttl=30, max_entries=2)
    entries.put("a", 1)
    entries.put("b", 2)
    entries.put("a", 3)  # stored again: now the newest
    entries.put("c", 4)
    assert (entries.get("a"), entries.get("b"), entries.get("c")) == (3, None, 4)
