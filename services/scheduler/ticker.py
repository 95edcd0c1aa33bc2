"""The clock: every interval, feed `Tick(now)` to jobs whose heartbeat deadline passed or retry time came,
and send what the outbox still holds from a send that failed or crashed."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler import repository
from services.scheduler.core import Tick
from services.scheduler.service import Delivery, SchedulerService

log = logging.getLogger(__name__)

BATCH = 500


async def tick_once(engine: AsyncEngine, service: SchedulerService, now: datetime | None = None) -> int:
    """Tick every due job once (one transaction); return how many were ticked."""
    now = now or datetime.now(UTC)
    async with engine.connect() as conn:
        due = await repository.due_jobs(conn, now, BATCH)
    if due:
        await service.apply_batch([Delivery(Tick(job_id=job_id, now=now)) for job_id in due])
    return len(due)


async def run_ticker(
    engine: AsyncEngine, service: SchedulerService, interval: float, stopping: asyncio.Event
) -> None:
    while not stopping.is_set():
        try:
            await tick_once(engine, service)
            await service.relay.relay_leftovers()
        except Exception:
            log.warning("ticker pass failed, the next one retries", exc_info=True)
        try:
            await asyncio.wait_for(stopping.wait(), timeout=interval)
        except TimeoutError:
            pass
