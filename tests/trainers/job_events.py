"""Plays the scheduler's part for trainer tests: the events a trainer's job goes through."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts import subjects
from contracts.events import JobEvent
from contracts.jobs import EventType, JobState


async def publish_cancelled(js, job_id: str) -> None:  # type: ignore[no-untyped-def]
    """Cancel the job as the scheduler would: the events service's status table learns it, and the next
    heartbeat answers stop."""
    event = JobEvent(
        job_id=job_id,
        project_id="p",
        type=EventType.CANCELLED,
        state=JobState.CANCELLED,
        attempt=1,
        version=4,
        time=datetime.now(UTC),
        trace_id="t",
        payload={"reason": "user asked"},
    )
    await js.publish(
        subjects.event_subject(job_id, EventType.CANCELLED.value),
        event.model_dump_json().encode(),
        stream=subjects.EVENTS_STREAM,
        headers={"Nats-Msg-Id": f"{job_id}:4"},
    )
