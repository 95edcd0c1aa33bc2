"""All SQL of the api service. Functions take the caller's session and never commit: the caller owns the
transaction.

The hot paths (submit, applying events) use SQLAlchemy Core: statements built once with bind parameters
(building a statement costs more than executing it), and on the submit path a plain connection rather
than an ORM session.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.api.models import ApiKey, Artifact, Dataset, Job, Project

jobs: Table = Job.__table__  # type: ignore[assignment]
datasets: Table = Dataset.__table__  # type: ignore[assignment]

# Of two racing submits with the same idempotency key, ON CONFLICT makes the second wait for the first to
# commit, then insert nothing.
_INSERT_JOB = (
    insert(jobs).on_conflict_do_nothing(index_elements=["project_id", "idempotency_key"]).returning(jobs.c.id)
)
_INSERT_JOB_IF_MISSING = insert(jobs).on_conflict_do_nothing(index_elements=["id"])
# The columns to set are the keys of the parameters; the version check and the write are one statement, so
# api processes applying events of the same job concurrently cannot both pass the check.
_UPDATE_JOB_IF_OLDER = update(jobs).where(
    jobs.c.id == bindparam("p_job_id"), jobs.c.version < bindparam("p_version")
)

# Projects and keys


async def add_project(session: AsyncSession, project: Project, key: ApiKey) -> None:
    session.add(project)
    await session.flush()
    session.add(key)
    await session.flush()


async def project_by_key_hash(session: AsyncSession, key_hash: str) -> tuple[str, str] | None:
    """`(id, name)` of the project of an unrevoked key."""
    statement = (
        select(Project.id, Project.name)
        .join(ApiKey, ApiKey.project_id == Project.id)
        .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else (row.id, row.name)


# Datasets


async def add_dataset(session: AsyncSession, dataset: Dataset) -> None:
    session.add(dataset)
    await session.flush()


async def dataset_location(
    conn: AsyncConnection, project_id: str, dataset_id: str
) -> tuple[str, str, str] | None:
    """`(id, format, storage_key)` of a dataset of the project."""
    statement = select(datasets.c.id, datasets.c.format, datasets.c.storage_key).where(
        datasets.c.id == dataset_id, datasets.c.project_id == project_id
    )
    row = (await conn.execute(statement)).one_or_none()
    return None if row is None else (row.id, row.format, row.storage_key)


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


async def insert_jobs(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert job rows in one statement; the ids of those inserted (a row whose project already has a job
    with its idempotency key is not)."""
    return set((await conn.execute(_INSERT_JOB, rows)).scalars())


async def delete_jobs(conn: AsyncConnection, job_ids: list[str]) -> None:
    await conn.execute(delete(jobs).where(jobs.c.id.in_(job_ids)))


async def insert_job_if_missing(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(_INSERT_JOB_IF_MISSING, values)


async def job_by_idempotency_key(conn: AsyncConnection, project_id: str, key: str) -> Job | None:
    """The job as a plain (transient) `Job`: read on a connection, not loaded into a session."""
    statement = select(jobs).where(jobs.c.project_id == project_id, jobs.c.idempotency_key == key)
    row = (await conn.execute(statement)).one_or_none()
    return None if row is None else Job(**row._mapping)


async def get_job(session: AsyncSession, project_id: str, job_id: str) -> Job | None:
    statement = select(Job).where(Job.id == job_id, Job.project_id == project_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def job_exists(session: AsyncSession, job_id: str) -> bool:
    statement = select(Job.id).where(Job.id == job_id)
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def job_version(session: AsyncSession, job_id: str) -> int:
    statement = select(Job.version).where(Job.id == job_id)
    return int((await session.execute(statement)).scalar_one_or_none() or 0)


async def update_job_if_older(
    session: AsyncSession, job_id: str, version: int, values: dict[str, Any]
) -> bool:
    """Update the job unless it already holds `version` or a newer one; False when it does (or is unknown)."""
    result = await session.execute(_UPDATE_JOB_IF_OLDER, {"p_job_id": job_id, "p_version": version, **values})
    return bool(result.rowcount)  # type: ignore[attr-defined]


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
