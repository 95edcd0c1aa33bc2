"""All SQL of the events service."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.events import JobEvent
from services.events.models import JobStatus


@dataclass(frozen=True)
class JobStatusRow:
    job_id: str
    state: str
    attempt: int
    version: int


async def get_job_status(session: AsyncSession, job_id: str) -> JobStatusRow | None:
    row = (await session.execute(select(JobStatus).where(JobStatus.job_id == job_id))).scalar_one_or_none()
    if row is None:
        return None
    return JobStatusRow(job_id=row.job_id, state=row.state, attempt=row.attempt, version=row.version)


async def apply_job_statuses(session: AsyncSession, events: list[JobEvent]) -> None:
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
    statement = insert(JobStatus).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[JobStatus.job_id],
        set_={
            "state": statement.excluded.state,
            "attempt": statement.excluded.attempt,
            "version": statement.excluded.version,
            "updated_at": statement.excluded.updated_at,
        },
        where=JobStatus.version < statement.excluded.version,
    )
    await session.execute(statement)
