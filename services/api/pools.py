"""Which pools exist, and how each is doing.

A pool is declared by its durable dispatch consumer, `pool-<name>` on VTP_DISPATCH: what `vtp up` (the
local pool), `vtp pools prepare` and the chart's prepare job create, and what a pool's runners pull from.
A job naming a pool that has none would wait for ever (a typo, a pool never deployed), so the api refuses
it (422 at `["body", "pool"]`, naming the known pools). The names are read from JetStream and kept for a
few seconds; a name not among them is looked up again at once, so a pool prepared a moment ago is known.
Submits that find the names stale at the same moment (a burst, every few seconds) share one read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from contracts import subjects
from services.api.errors import InvalidField, Unavailable

CACHE_SECONDS = 5.0
POOL_PREFIX = subjects.pool_consumer("")


@dataclass(frozen=True)
class DeclaredPool:
    name: str
    # Runners waiting for a job now (their pull requests open on the consumer).
    runners_waiting: int
    # Dispatches taken by a runner and not settled yet, and the last time a runner took one.
    dispatches_held: int
    last_taken_at: datetime | None


class PoolDirectory:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._names: frozenset[str] = frozenset()
        self._read_at = float("-inf")
        self._reading: asyncio.Task[list[DeclaredPool]] | None = None

    async def declared(self) -> list[DeclaredPool]:
        """Every declared pool, read now."""
        pools = [_declared(info) for info in await self._consumers() if info.name.startswith(POOL_PREFIX)]
        self._remember(pool.name for pool in pools)
        return sorted(pools, key=lambda pool: pool.name)

    async def require(self, pool: str) -> None:
        """Refuse a job to a pool that is not declared (422 naming the known ones)."""
        if pool in self._names and time.monotonic() - self._read_at < CACHE_SECONDS:
            return
        known = [declared.name for declared in await self._shared_read()]
        if pool not in known:
            listed = ", ".join(known) if known else "none yet (`vtp pools prepare POOL` declares one)"
            raise InvalidField(("body", "pool"), f"pool {pool!r} is not declared; known pools: {listed}")

    async def _shared_read(self) -> list[DeclaredPool]:
        """`declared()`, one read for every caller waiting on it at the time."""
        if self._reading is None:
            self._reading = asyncio.create_task(self.declared())
            self._reading.add_done_callback(self._read_done)
        # Shielded: a caller that goes away (its request cancelled) does not cancel the others' read.
        return await asyncio.shield(self._reading)

    def _read_done(self, reading: asyncio.Task[list[DeclaredPool]]) -> None:
        self._reading = None
        if not reading.cancelled():
            # Its callers got the failure, if any: asyncio need not log it as never retrieved.
            reading.exception()

    async def _consumers(self) -> Sequence[ConsumerInfo]:
        try:
            return await self._js.consumers_info(subjects.DISPATCH_STREAM)
        except NotFoundError:
            return []  # no dispatch stream yet: no pool declared
        except (nats.errors.Error, TimeoutError) as exc:
            raise Unavailable(
                f"cannot read the declared pools from NATS: {exc or type(exc).__name__}"
            ) from exc

    def _remember(self, names: Iterable[str]) -> None:
        self._names = frozenset(names)
        self._read_at = time.monotonic()


def _declared(info: ConsumerInfo) -> DeclaredPool:
    delivered = info.delivered
    return DeclaredPool(
        name=info.name.removeprefix(POOL_PREFIX),
        runners_waiting=info.num_waiting or 0,
        dispatches_held=info.num_ack_pending or 0,
        last_taken_at=delivered.last_active if delivered is not None else None,
    )
