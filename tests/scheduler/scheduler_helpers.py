"""Helpers for the scheduler's integration tests: publish inputs, read what the scheduler published."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from nats.js import JetStreamContext
from nats.js.errors import ServiceUnavailableError

from contracts import subjects
from contracts.dispatch import DispatchJob
from contracts.events import JobEvent
from services.scheduler.replay import stored_events


def new_pool() -> str:
    return f"t-{uuid4().hex[:12]}"


async def wait_events(js: JetStreamContext, job_id: str, count: int, within: float = 10.0) -> list[JobEvent]:
    """The job's events once at least `count` are stored (all of them, in stream order)."""
    async with asyncio.timeout(within):
        while True:
            events = await stored_events(js, job_id)
            if len(events) >= count:
                return events
            await asyncio.sleep(0.05)


async def dispatched(
    js: JetStreamContext, pool: str, expected: int, within: float = 5.0
) -> list[DispatchJob]:
    """Take (and ack) what waits on the pool's consumer, as a runner would: at least `expected` of them,
    then whatever else is already there (there should be nothing)."""
    subscription = await js.pull_subscribe_bind(subjects.pool_consumer(pool), subjects.DISPATCH_STREAM)
    out: list[DispatchJob] = []

    async def take(wait: float) -> None:
        try:
            batch = await subscription.fetch(batch=10, timeout=wait)
        except TimeoutError:
            return
        except ServiceUnavailableError:
            # A consumer created a moment ago may not answer its first pull yet (status 503).
            await asyncio.sleep(0.1)
            return
        for msg in batch:
            out.append(DispatchJob.model_validate_json(msg.data))
            await msg.ack()

    try:
        async with asyncio.timeout(within):
            while len(out) < expected:
                await take(0.5)
        await take(0.3)
    finally:
        await subscription.unsubscribe()
    return out


async def publish(js: JetStreamContext, subject: str, message, msg_id: str | None = None) -> None:
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    await js.publish(subject, message.model_dump_json().encode(), headers=headers)
