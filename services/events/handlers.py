"""The `events-job-status` consumer: keeps `events_job_status` in step with VTP_EVENTS so a heartbeat can be
answered from this service's own table.

A heartbeat only needs to know whether the job ended and which attempt is current, so the consumer takes
just the events that change those (a retry starts a new attempt; the terminal events end the job), not the
stream of progress and log events.

A FastStream push subscriber on the durable (`contracts.streams.job_status_consumer`,
`messaging.subscribers.BatchSubscription`) hands each message to a group commit, one batch at a time. Ack
policy MANUAL: a batch is applied in one transaction, then each message acked. An event that does not
parse is terminated (logged; it would never parse). A database failure naks the batch with a delay:
redelivery is harmless because rows are only replaced by a newer version.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import streams, subjects
from contracts.events import JobEvent
from messaging.subscribers import BatchSubscription, ensure_push_consumer
from services.events import repository

log = logging.getLogger(__name__)

BATCH = 256
RETRY_DELAY = 2.0


async def ensure_job_status_consumer(js: JetStreamContext) -> None:
    """The durable is a push consumer the subscriber makes (into the events service's inbox); one made as a
    pull consumer by an older release goes first."""
    await ensure_push_consumer(js, subjects.EVENTS_STREAM, subjects.EVENTS_JOB_STATUS_CONSUMER)


async def apply_batch(engine: AsyncEngine, messages: Sequence[Msg]) -> None:
    events: list[tuple[Msg, JobEvent]] = []
    for msg in messages:
        try:
            events.append((msg, JobEvent.model_validate_json(msg.data)))
        except ValidationError as exc:
            log.error("terminating unparseable job event on %s: %s", msg.subject, exc.errors()[:1])
            await msg.term()
    if not events:
        return
    try:
        async with engine.begin() as conn:
            await repository.apply_job_statuses(conn, [event for _, event in events])
    except (SQLAlchemyError, OSError) as exc:
        log.warning("job status update failed, redelivering %d events: %s", len(events), exc)
        for msg, _ in events:
            await msg.nak(delay=RETRY_DELAY)
        return
    for msg, _ in events:
        await msg.ack()


class JobStatusConsumer:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._subscription: BatchSubscription | None = None

    def subscribe(self, broker: NatsBroker) -> None:
        """Take the durable's events through `broker` (before it starts; `ensure_job_status_consumer`
        first). The consumer's own filter subjects choose the events; events replicas share it."""
        self._subscription = BatchSubscription(
            broker,
            subjects.EVENTS_STREAM,
            streams.job_status_consumer(),
            functools.partial(apply_batch, self._engine),
            BATCH,
            parallel=1,
        )

    async def stop(self) -> None:
        """Before the broker stops (it drains the connection): take no more messages, and apply and settle
        those in hand."""
        if self._subscription is not None:
            await self._subscription.stop()
