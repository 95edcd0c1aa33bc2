"""The `events-job-status` consumer: keeps `events_job_status` in step with VTP_EVENTS so a heartbeat can be
answered from this service's own table.

A heartbeat only needs to know whether the job ended and which attempt is current, so the consumer takes
just the events that change those (a retry starts a new attempt; the terminal events end the job), not the
stream of progress and log events.

Ack semantics: a batch is applied in one transaction, then acked. An event that does not parse is terminated
(logged; it would never parse). A database failure naks the batch with a delay: redelivery is harmless
because rows are only replaced by a newer version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import streams, subjects
from contracts.events import JobEvent
from services.events import repository

log = logging.getLogger(__name__)

BATCH = 256
FETCH_TIMEOUT = 1.0
RETRY_DELAY = 2.0


async def ensure_job_status_consumer(js: JetStreamContext) -> None:
    await js.add_consumer(subjects.EVENTS_STREAM, streams.job_status_consumer())


async def apply_batch(engine: AsyncEngine, messages: list[Msg]) -> None:
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


async def run_job_status_consumer(js: JetStreamContext, engine: AsyncEngine) -> None:
    """Runs until cancelled."""
    await ensure_job_status_consumer(js)
    sub = await js.pull_subscribe_bind(
        durable=subjects.EVENTS_JOB_STATUS_CONSUMER, stream=subjects.EVENTS_STREAM
    )
    try:
        while True:
            try:
                messages = await sub.fetch(BATCH, timeout=FETCH_TIMEOUT)
            except TimeoutError:
                continue
            except nats.errors.Error as exc:
                log.warning("fetching job events failed: %s", exc)
                await asyncio.sleep(RETRY_DELAY)
                continue
            await apply_batch(engine, messages)
    finally:
        # A pull subscription left behind after a cancelled fetch makes the connection's drain hang.
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
