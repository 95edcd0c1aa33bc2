"""All SQL of the api service. Functions take the caller's session and never commit: the caller owns the
transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.models import ApiKey, Artifact, Dataset, Job, Project

# Projects and keys


async def add_project(session: AsyncSession, project: Project, key: ApiKey) -> None:
    session.add(project)
    await session.flush()
    session.add(key)
    await session.flush()


async def project_by_key_hash(session: AsyncSession, key_hash: str) -> Project | None:
    statement = (
        select(Project)
        .join(ApiKey, ApiKey.project_id == Project.id)
        .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )
    return (await session.execute(statement)).scalar_one_or_none()


# Datasets


async def add_dataset(session: AsyncSession, dataset: Dataset) -> None:
    session.add(dataset)
    await session.flush()


async def get_dataset(session: AsyncSession, project_id: str, dataset_id: str) -> Dataset | None:
    statement = select(Dataset).where(Dataset.id == dataset_id, Dataset.project_id == project_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def list_datasets(session: AsyncSession, project_id: str, limit: int) -> list[Dataset]:
    statement = (
        select(Dataset)
        .where(Dataset.project_id == project_id)
        .order_by(Dataset.created_at.desc(), Dataset.id.desc())
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


# Jobs


async def insert_job(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert a job row; False when the project already has a job with the same idempotency key.

    ON CONFLICT waits for a concurrent transaction holding the same key, so of two racing submits exactly
    one inserts and the other sees its row once it commits.
    """
    statement = (
        insert(Job)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["project_id", "idempotency_key"])
        .returning(Job.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def insert_job_if_missing(session: AsyncSession, values: dict[str, Any]) -> None:
    statement = insert(Job).values(**values).on_conflict_do_nothing(index_elements=["id"])
    await session.execute(statement)


async def job_by_idempotency_key(session: AsyncSession, project_id: str, key: str) -> Job | None:
    statement = select(Job).where(Job.project_id == project_id, Job.idempotency_key == key)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_job(session: AsyncSession, project_id: str, job_id: str) -> Job | None:
    statement = select(Job).where(Job.id == job_id, Job.project_id == project_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def lock_job(session: AsyncSession, job_id: str) -> Job | None:
    statement = select(Job).where(Job.id == job_id).with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def job_version(session: AsyncSession, job_id: str) -> int:
    statement = select(Job.version).where(Job.id == job_id)
    return int((await session.execute(statement)).scalar_one_or_none() or 0)


async def update_job(session: AsyncSession, job_id: str, values: dict[str, Any]) -> None:
    await session.execute(update(Job).where(Job.id == job_id).values(**values))


async def list_jobs(
    session: AsyncSession,
    project_id: str,
    state: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[Job]:
    """Newest first; `after` is the (created_at, id) of the last job of the previous page."""
    statement = select(Job).where(Job.project_id == project_id)
    if state is not None:
        statement = statement.where(Job.state == state)
    if after is not None:
        created_at, job_id = after
        statement = statement.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    statement = statement.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return list((await session.execute(statement)).scalars())


# Artifacts


async def upsert_artifact(session: AsyncSession, values: dict[str, Any]) -> None:
    statement = insert(Artifact).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["job_id", "name"],
        set_={
            "size": statement.excluded.size,
            "sha256": statement.excluded.sha256,
            "storage_key": statement.excluded.storage_key,
        },
    )
    await session.execute(statement)


async def list_artifacts(session: AsyncSession, job_id: str) -> list[Artifact]:
    statement = select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.name)
    return list((await session.execute(statement)).scalars())


async def get_artifact(session: AsyncSession, job_id: str, name: str) -> Artifact | None:
    statement = select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name)
    return (await session.execute(statement)).scalar_one_or_none()
