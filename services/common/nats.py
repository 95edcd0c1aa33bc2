"""JetStream streams (declared once, here) and connection helpers shared by every service."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError

from contracts import subjects

log = logging.getLogger(__name__)

DAY = 24 * 3600

STREAMS: tuple[StreamConfig, ...] = (
    StreamConfig(
        name=subjects.COMMANDS_STREAM,
        subjects=[subjects.COMMANDS_ALL],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=120,
    ),
    StreamConfig(
        name=subjects.DISPATCH_STREAM,
        subjects=[subjects.DISPATCH_ALL],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=120,
    ),
    StreamConfig(
        name=subjects.REPORTS_STREAM,
        subjects=[subjects.REPORTS_ALL],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=120,
    ),
    StreamConfig(
        name=subjects.EVENTS_STREAM,
        subjects=[subjects.EVENTS_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=365 * DAY,
        # Covers a scheduler crash + redelivery: the same <job_id>:<version> is dropped, never stored twice.
        duplicate_window=600,
    ),
)


async def connect(url: str, name: str) -> NATS:
    """Connect with reconnects that never give up: a service outlives a NATS restart."""
    return await nats.connect(url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5)


async def ensure_streams(js: JetStreamContext) -> None:
    """Create or update every stream. Idempotent; every service calls it at start-up."""
    for config in STREAMS:
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)


POOL_ACK_WAIT_SECONDS = 60


async def ensure_pool_consumer(js: JetStreamContext, pool: str) -> None:
    """The durable pull consumer a pool's runners share; KEDA and the local pool read its lag.

    Runners keep their message alive with `in_progress()` and ack only when the trainer is done, so
    ack-pending messages are work in flight. Idempotent.
    """
    config = ConsumerConfig(
        durable_name=subjects.pool_consumer(pool),
        filter_subject=subjects.dispatch_subject(pool),
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=POOL_ACK_WAIT_SECONDS,
        max_deliver=-1,
        max_ack_pending=-1,
    )
    await js.add_consumer(subjects.DISPATCH_STREAM, config)
