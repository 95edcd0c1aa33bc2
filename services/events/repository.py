"""All SQL of the events service."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import JobEvent
from services.events.models import JobStatus


@dataclass(frozen=True)
class JobStatusRow:
    job_id: str
    state: str
    attempt: int
    version: int


_JOB_STATUS = select(
    JobStatus.job_id,
    JobStatus.state,
    JobStatus.attempt,
    JobStatus.version,  # type: ignore[arg-type]
).where(JobStatus.job_id == bindparam("job_id"))


async def get_job_status(conn: AsyncConnection, job_id: str) -> JobStatusRow | None:
    # Every heartbeat asks: columns, not an ORM object, from a statement built once.
    row = (await conn.execute(_JOB_STATUS, {"job_id": job_id})).one_or_none()
    return None if row is None else JobStatusRow(*row)


_UPSERT = insert(JobStatus)
# Built once; executed with a list of rows, it is one prepared statement run for each row in one round trip.
_UPSERT_JOB_STATUS = _UPSERT.on_conflict_do_update(
    index_elements=[JobStatus.job_id],
    set_={
        "state": _UPSERT.excluded.state,
        "attempt": _UPSERT.excluded.attempt,
        "version": _UPSERT.excluded.version,
        "updated_at": _UPSERT.excluded.updated_at,
    },
    where=JobStatus.version < _UPSERT.excluded.version,
)


async def apply_job_statuses(conn: AsyncConnection, events: list[JobEvent]) -> None:
    """Upsert each job's newest event in one statement; a row already at or past that version (redelivery,
    replay) stays as it is."""
    newest: dict[str, JobEvent] = {}
    for event in events:
        if event.job_id not in newest or newest[event.job_id].version < event.version:
            newest[event.job_id] = event
    rows = [
        {
            "job_id": event.job_id,
            "state": event.state.value,
            "attempt": event.attempt,
            "version": event.version,
            "updated_at": event.time,
        }
        for event in newest.values()
    ]
    await conn.execute(_UPSERT_JOB_STATUS, rows)
