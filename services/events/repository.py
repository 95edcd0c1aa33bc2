"""All SQL of the events service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

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


async def apply_job_status(
    session: AsyncSession, job_id: str, state: str, attempt: int, version: int, time: datetime
) -> bool:
    """Upsert unless the stored version is already at or past `version` (redelivery, replay). Returns
    whether the row changed."""
    statement = insert(JobStatus).values(
        job_id=job_id, state=state, attempt=attempt, version=version, updated_at=time
    )
    statement = statement.on_conflict_do_update(
        index_elements=[JobStatus.job_id],
        set_={"state": state, "attempt": attempt, "version": version, "updated_at": time},
        where=JobStatus.version < version,
    ).returning(JobStatus.job_id)
    return (await session.execute(statement)).first() is not None
