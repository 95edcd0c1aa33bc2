"""The outbox relay: sends what committed decisions owe the stream, and only that.

A decision's messages are written to `scheduler_outbox` in the decision's own transaction, sent after it
commits, and deleted once their PubAcks came (`deliver`). An input whose transaction fails publishes nothing,
so the stream never holds an event the scheduler's state did not commit, and the version it would have used
is free for the next real event. A crash or a NATS outage between the commit and the delete leaves rows
behind: `relay_leftovers` sends them again on start and on every tick, and JetStream drops the copies it
already holds by `Nats-Msg-Id` (both streams keep ids for 10 minutes). An event left longer than that is
checked against the last event on its subject first.

Order per job: a transaction reads the rows its jobs still owe (under their row locks) and sends them before
its own, so a job's events reach the stream in version order however the sends of two commits interleave.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import subjects
from services.scheduler import repository
from services.scheduler.publisher import Outgoing, Publisher

log = logging.getLogger(__name__)

LEFTOVER_BATCH = 500
# JetStream recognises a message id this long (messaging/nats.py: duplicate_window), less a margin.
DUPLICATE_WINDOW = timedelta(seconds=540)


class Relay:
    def __init__(self, engine: AsyncEngine, publisher: Publisher) -> None:
        self._engine = engine
        self._publisher = publisher

    async def deliver(self, messages: Sequence[Outgoing]) -> bool:
        """Send committed messages and delete them from the outbox. A failure is logged, not raised: the
        messages stay in the outbox and the next relay pass sends them."""
        if not messages:
            return True
        try:
            await self._publisher.send(messages)
        except Exception:
            log.warning("%d committed messages not sent yet; the relay retries", len(messages), exc_info=True)
            return False
        try:
            async with self._engine.begin() as conn:
                await repository.remove_from_outbox(conn, [m.outbox_id for m in messages if m.outbox_id])
        except Exception:
            log.warning("sent messages not removed from the outbox; sent again, dropped as duplicates")
        return True

    async def relay_leftovers(self, older_than: float = 5.0) -> int:
        """Send what the outbox held for longer than `older_than` seconds; return how many were sent."""
        now = datetime.now(UTC)
        async with self._engine.connect() as conn:
            leftovers = await repository.leftover_messages(
                conn, now - timedelta(seconds=older_than), LEFTOVER_BATCH
            )
        if not leftovers:
            return 0
        to_send: list[Outgoing] = []
        already: list[Outgoing] = []
        for message, written in leftovers:
            old_event = now - written > DUPLICATE_WINDOW and message.stream == subjects.EVENTS_STREAM
            if old_event and await self._publisher.event_stored(message):
                already.append(message)
            else:
                to_send.append(message)
        log.info("relaying %d outbox messages left by an earlier send", len(to_send))
        if already:
            async with self._engine.begin() as conn:
                await repository.remove_from_outbox(conn, [m.outbox_id for m in already if m.outbox_id])
        sent = await self.deliver(to_send)
        return len(to_send) if sent else 0
