"""The JetStream streams and durable consumers: what each holds, how long, and how its messages are settled.

Declarations only, next to the subjects they carry (`contracts.subjects`); `messaging.nats` puts them in place
(`vtp up` and `vtp pools prepare` as the admin user, each service checking at start-up).
"""

from __future__ import annotations

from typing import Any

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from contracts import subjects
from contracts.jobs import EventType

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
        # As long as the events' window: the scheduler's outbox may publish a dispatch again after a crash
        # (services/scheduler/outbox.py), and a second copy would run the attempt twice.
        duplicate_window=600,
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

SCHEDULER_ACK_WAIT_SECONDS = 30
POOL_ACK_WAIT_SECONDS = 60


def _durable(name: str, ack_wait: float, max_ack_pending: int, **fields: Any) -> ConsumerConfig:
    """Every consumer acks explicitly, after its effect is committed, and is never given up on by the
    server (max_deliver -1): a consumer decides itself when an input is permanent and terminates it."""
    return ConsumerConfig(
        durable_name=name,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=-1,
        max_ack_pending=max_ack_pending,
        **fields,
    )


def scheduler_consumer(durable: str, filter_subject: str, in_flight: int) -> ConsumerConfig:
    """The scheduler's commands and reports consumers (push, into the scheduler's inbox): `in_flight`
    inputs in hand at once."""
    return _durable(
        durable,
        SCHEDULER_ACK_WAIT_SECONDS,
        max(1000, 4 * in_flight),
        filter_subject=filter_subject,
        deliver_policy=DeliverPolicy.ALL,
    )


def pool_consumer(pool: str) -> ConsumerConfig:
    """The durable pull consumer a pool's runners share; KEDA and the local pool read its lag.

    Runners keep their message alive with `in_progress()` and ack only when the trainer is done, so
    ack-pending messages are work in flight.
    """
    return _durable(
        subjects.pool_consumer(pool),
        POOL_ACK_WAIT_SECONDS,
        -1,
        filter_subject=subjects.dispatch_subject(pool),
    )


def read_model_consumer() -> ConsumerConfig:
    """The api's read model (push, into the api's inbox): every job event, as soon as it is stored."""
    return _durable(subjects.API_READ_MODEL_CONSUMER, 30, 1024, deliver_policy=DeliverPolicy.ALL)


# The events that change what the events service answers a callback: a retry starts a new attempt, the
# terminal events end the job.
JOB_STATUS_EVENTS = (
    EventType.RETRYING,
    EventType.SUCCEEDED,
    EventType.FAILED,
    EventType.CANCELLED,
)


def job_status_consumer() -> ConsumerConfig:
    """The events service's view of which attempt of a job is current and whether the job has ended
    (push, into the events service's inbox)."""
    return _durable(
        subjects.EVENTS_JOB_STATUS_CONSUMER,
        30,
        10_000,
        filter_subjects=[subjects.event_subject("*", event.value) for event in JOB_STATUS_EVENTS],
        deliver_policy=DeliverPolicy.ALL,
    )
