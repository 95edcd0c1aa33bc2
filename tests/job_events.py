"""Plays the scheduler's part for consumer tests: job events as it publishes them, and a database that can
be taken down."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import subjects
from contracts.events import JobEvent
from contracts.jobs import EventType, JobState


def job_event(
    job_id: str, event_type: EventType, state: JobState, version: int, attempt: int = 1, project_id: str = "p"
) -> JobEvent:
    return JobEvent(
        job_id=job_id,
        project_id=project_id,
        type=event_type,
        state=state,
        attempt=attempt,
        version=version,
        time=datetime.now(UTC),
        trace_id=uuid.uuid4().hex,
        payload={},
    )


async def publish_event(js: JetStreamContext, event: JobEvent) -> int:
    """As the scheduler's publisher does: PubAck awaited, `Nats-Msg-Id = <job_id>:<version>`; returns the
    stream sequence."""
    ack = await js.publish_async(
        subjects.event_subject(event.job_id, event.type.value),
        event.model_dump_json().encode(),
        stream=subjects.EVENTS_STREAM,
        headers={"Nats-Msg-Id": f"{event.job_id}:{event.version}"},
    )
    return int((await ack).seq)


class SwitchableDatabase:
    """The engine, or a database that is down (for new transactions) while `down` is set."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.down = False

    def begin(self) -> Any:
        if self.down:
            raise OperationalError("connect", None, ConnectionRefusedError())
        return self.engine.begin()

    def connect(self) -> Any:
        return self.engine.connect()
