"""The outbox relay: sends what committed decisions owe the stream, and only that.

A decision's messages are written to `scheduler_outbox` in the decision's own transaction and sent after it
commits (`deliver`). An input whose transaction fails publishes nothing, so the stream never holds an event
the scheduler's state did not commit, and the version it would have used is free for the next real event.

Sent rows are deleted lazily: once their PubAcks came they are known as sent (`SentRows`, in memory) and the
next batch's transaction deletes them in its first statement; the ticker's pass (`relay_leftovers`) deletes
what no batch took within a tick. So a send costs no transaction of its own. A crash or a NATS outage
between the commit and the delete leaves rows behind: `relay_leftovers` sends them again on start and on
every tick, and JetStream drops the copies it already holds by `Nats-Msg-Id` (both streams keep ids for 10
minutes). An event left longer than that is checked against the last event on its subject first.

Order per job: a transaction reads the rows its jobs still have (under their row locks) and sends the ones
not known as sent before its own, so a job's events reach the stream in version order however the sends of
two commits interleave.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import subjects
from services.scheduler import repository
from services.scheduler.publisher import Outgoing, Publisher

log = logging.getLogger(__name__)

LEFTOVER_BATCH = 500
# At most this many sent rows are deleted by one batch's transaction (the rest by the next ones).
SENT_PER_BATCH = 1000
# JetStream recognises a message id this long (messaging/nats.py: duplicate_window), less a margin.
DUPLICATE_WINDOW = timedelta(seconds=540)


class SentRows:
    """Outbox rows whose PubAcks came and that are not deleted yet: waiting for a transaction to take them,
    or taken by one that has not committed yet. Neither is sent again by a batch or the relay."""

    def __init__(self) -> None:
        self._waiting: dict[int, None] = {}
        self._taken: set[int] = set()

    def __contains__(self, outbox_id: int) -> bool:
        return outbox_id in self._waiting or outbox_id in self._taken

    def __len__(self) -> int:
        return len(self._waiting) + len(self._taken)

    def add(self, outbox_ids: Iterable[int]) -> None:
        self._waiting.update(dict.fromkeys(outbox_ids))

    def take(self, limit: int = SENT_PER_BATCH) -> list[int]:
        """Rows for a transaction to delete; call `deleted` or `kept` once it ended."""
        taken = [outbox_id for outbox_id, _ in zip(self._waiting, range(limit), strict=False)]
        for outbox_id in taken:
            del self._waiting[outbox_id]
        self._taken.update(taken)
        return taken

    def deleted(self, outbox_ids: Iterable[int]) -> None:
        self._taken.difference_update(outbox_ids)

    def kept(self, outbox_ids: Iterable[int]) -> None:
        """The transaction that took them failed: they wait for the next one."""
        outbox_ids = list(outbox_ids)
        self._taken.difference_update(outbox_ids)
        self.add(outbox_ids)


class Relay:
    def __init__(self, engine: AsyncEngine, publisher: Publisher) -> None:
        self._engine = engine
        self._publisher = publisher
        self.sent = SentRows()

    async def deliver(self, messages: Sequence[Outgoing]) -> bool:
        """Send committed messages; once every PubAck came they are known as sent, to be deleted by the
        next transaction. A failure is logged, not raised: the messages stay in the outbox, unsent, and
        the job's next batch or the relay's next pass sends them."""
        if not messages:
            return True
        try:
            await self._publisher.send(messages)
        except Exception:
            log.warning("%d committed messages not sent yet; the relay retries", len(messages), exc_info=True)
            return False
        self.sent.add(m.outbox_id for m in messages if m.outbox_id is not None)
        return True

    async def delete_sent(self) -> None:
        """Delete every row known as sent, in a transaction of its own."""
        while taken := self.sent.take():
            try:
                async with self._engine.begin() as conn:
                    await repository.remove_from_outbox(conn, taken)
            except BaseException:
                self.sent.kept(taken)
                raise
            self.sent.deleted(taken)

    async def relay_leftovers(self, older_than: float = 5.0) -> int:
        """Delete what was sent, then send what the outbox held for longer than `older_than` seconds and
        is not known as sent; return how many were sent."""
        await self.delete_sent()
        now = datetime.now(UTC)
        async with self._engine.connect() as conn:
            leftovers = await repository.leftover_messages(
                conn, now - timedelta(seconds=older_than), LEFTOVER_BATCH
            )
        leftovers = [(m, written) for m, written in leftovers if m.outbox_id not in self.sent]
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
        if sent:
            await self.delete_sent()
        return len(to_send) if sent else 0
