"""All SQL of the api service. Functions take the caller's session and never commit: the caller owns the
transaction.

The hot paths (submit, applying events) use SQLAlchemy Core: statements built once with bind parameters
(building a statement costs more than executing it), and on the submit path a plain connection rather
than an ORM session.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    Table,
    TextClause,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from contracts.jobs import JobState
from contracts.validation import VALIDATION_FRAMEWORK
from services.api.models import ApiKey, Artifact, Dataset, DatasetStatus, Job, Project, UploadedModel

jobs: Table = Job.__table__  # type: ignore[assignment]
datasets: Table = Dataset.__table__  # type: ignore[assignment]

_INSERT_JOB_IF_MISSING = insert(jobs).on_conflict_do_nothing().returning(jobs.c.id)

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


async def lock_dataset_name(session: AsyncSession, project_id: str, name: str) -> None:
    """Uploads under one name take turns until their transactions end, so the duplicate check and the next
    version number see every upload before them."""
    key = func.hashtextextended(f"{project_id}/{name}", 0)
    await session.execute(select(func.pg_advisory_xact_lock(key)))


async def dataset_with_archive(
    session: AsyncSession, project_id: str, name: str, sha256: str
) -> Dataset | None:
    """The newest version under `name` uploaded as exactly this archive, unless its validation failed (then
    uploading it again is how to retry)."""
    statement = (
        select(Dataset)
        .where(
            Dataset.project_id == project_id,
            Dataset.name == name,
            Dataset.sha256 == sha256,
            Dataset.status != DatasetStatus.FAILED.value,
        )
        .order_by(Dataset.version.desc())
        .limit(1)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def next_dataset_version(session: AsyncSession, project_id: str, name: str) -> int:
    statement = select(func.coalesce(func.max(Dataset.version), 0) + 1).where(
        Dataset.project_id == project_id, Dataset.name == name
    )
    return int((await session.execute(statement)).scalar_one())


async def find_dataset(
    db: AsyncConnection | AsyncSession,
    project_id: str,
    *,
    dataset_id: str | None = None,
    name: str | None = None,
    version: int | None = None,
    status: DatasetStatus | None = None,
) -> Dataset | None:
    """A dataset of the project by id, or by name (and version; without one, the newest version, of
    `status` if given), as a plain (transient) `Dataset`: the submit path reads it on a connection."""
    statement = select(datasets).where(datasets.c.project_id == project_id)
    if dataset_id is not None:
        statement = statement.where(datasets.c.id == dataset_id)
    else:
        statement = statement.where(datasets.c.name == name)
        if version is not None:
            statement = statement.where(datasets.c.version == version)
        if status is not None:
            statement = statement.where(datasets.c.status == status.value)
    row = (await db.execute(statement.order_by(datasets.c.version.desc()).limit(1))).first()
    return None if row is None else Dataset(**row._mapping)


async def list_datasets(
    session: AsyncSession, project_id: str, name: str | None, limit: int
) -> list[Dataset]:
    """Newest first."""
    statement = select(Dataset).where(Dataset.project_id == project_id)
    if name is not None:
        statement = statement.where(Dataset.name == name)
    statement = statement.order_by(Dataset.created_at.desc(), Dataset.id.desc()).limit(limit)
    return list((await session.execute(statement)).scalars())


async def settle_validation(conn: AsyncConnection, validation_job_id: str, values: dict[str, Any]) -> bool:
    """Record the outcome of a dataset's validation job, once: False when no dataset waits for this job."""
    statement = (
        update(datasets)
        .where(
            datasets.c.validation_job_id == validation_job_id,
            datasets.c.status == DatasetStatus.VALIDATING.value,
        )
        .values(**values)
    )
    result = await conn.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def dataset_of_validation_exists(conn: AsyncConnection, validation_job_id: str) -> bool:
    statement = select(datasets.c.id).where(datasets.c.validation_job_id == validation_job_id)
    return (await conn.execute(statement)).first() is not None


# Jobs


async def skip_waiting_for_disk(conn: AsyncConnection) -> None:
    """This transaction's COMMIT returns before its WAL reaches the disk (Postgres' asynchronous commit).
    For a transaction whose rows the stream can rebuild: a crash of Postgres may lose its last fraction of
    a second of such commits, never corrupts anything, and any later durable commit flushes them too."""
    await conn.execute(text("SET LOCAL synchronous_commit TO OFF"))


async def insert_jobs(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert job rows (all with the same keys) in one statement; the ids of those inserted (a row whose
    project already has a job with its idempotency key is not)."""
    columns = tuple(rows[0])
    return set((await conn.execute(_insert_rows(columns), _arrays(columns, rows))).scalars())


async def delete_jobs(conn: AsyncConnection, job_ids: list[str]) -> None:
    await conn.execute(delete(jobs).where(jobs.c.id.in_(job_ids)))


async def insert_job_if_missing(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Insert a job's row unless it exists. Should another job of the project hold its idempotency key
    already (two jobs submitted with one key, before job ids were derived from keys), the row is kept
    without the key rather than lost."""
    if (await conn.execute(_INSERT_JOB_IF_MISSING, values)).first() is not None:
        return
    if values.get("idempotency_key") is not None and not await job_exists(conn, values["id"]):
        await conn.execute(_INSERT_JOB_IF_MISSING, {**values, "idempotency_key": None})


async def job_by_idempotency_key(
    conn: AsyncConnection, project_id: str, key: str, job_id: str
) -> dict[str, Any] | None:
    """The row (its columns by name) of the project's job with this key, or with the id derived from it
    (a row rebuilt from the stream before `job.submitted` carried the key)."""
    statement = (
        select(jobs)
        .where(jobs.c.project_id == project_id, or_(jobs.c.idempotency_key == key, jobs.c.id == job_id))
        .order_by(jobs.c.idempotency_key.is_(None))
        .limit(1)
    )
    row = (await conn.execute(statement)).first()
    return None if row is None else dict(row._mapping)


async def get_job(session: AsyncSession, project_id: str, job_id: str) -> Job | None:
    statement = select(Job).where(Job.id == job_id, Job.project_id == project_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def job_exists(conn: AsyncConnection, job_id: str) -> bool:
    statement = select(Job.id).where(Job.id == job_id)
    return (await conn.execute(statement)).scalar_one_or_none() is not None


async def job_version(conn: AsyncConnection, job_id: str) -> int:
    statement = select(Job.version).where(Job.id == job_id)
    return int((await conn.execute(statement)).scalar_one_or_none() or 0)


@dataclass(frozen=True, slots=True)
class RowUpdate:
    """Set `changes` on a job's row unless it already holds version `first_version` or a newer one."""

    job_id: str
    first_version: int
    changes: dict[str, Any]


async def update_jobs_if_older(conn: AsyncConnection, updates: list[RowUpdate]) -> dict[str, str]:
    """Apply many `RowUpdate`s, one statement per set of columns changed. The framework of each job updated,
    by id; a job left out already held that version (or is unknown)."""
    groups: dict[tuple[str, ...], list[RowUpdate]] = {}
    for row in updates:
        groups.setdefault(tuple(sorted(row.changes)), []).append(row)
    updated: dict[str, str] = {}
    for columns, rows in groups.items():
        parameters = {
            "p_job_id": [row.job_id for row in rows],
            "p_version": [row.first_version for row in rows],
            **_arrays(columns, [row.changes for row in rows]),
        }
        result = await conn.execute(_update_rows(columns), parameters)
        updated.update({job_id: framework for job_id, framework in result})
    return updated


# Many rows in one statement: each column travels as one array and `unnest` turns the arrays back into rows.
# Unlike a multi-row VALUES list, the statement's text is the same whatever the number of rows, so a pooled
# connection prepares it once (a new text per batch size costs a prepare, a round trip and a plan, per batch).
# JSON travels as text and is cast back: one codec, no guessing.


def _sql_type(column: str) -> str:
    kind = jobs.c[column].type
    if isinstance(kind, JSONB):
        return "jsonb"
    if isinstance(kind, DateTime):
        return "timestamptz"
    if isinstance(kind, Integer):
        return "int"
    return "text"


def _unnest(columns: Sequence[str], extra: Sequence[tuple[str, str]] = ()) -> str:
    """`unnest(...) AS v(...)` over array parameters named like the columns (`extra`: (name, type) pairs)."""
    typed = [*extra, *((column, _sql_type(column)) for column in columns)]
    arrays = ", ".join(f"CAST(:{name} AS {'text' if kind == 'jsonb' else kind}[])" for name, kind in typed)
    return f"unnest({arrays}) AS v({', '.join(name for name, _ in typed)})"


def _value(column: str) -> str:
    return f"v.{column}::jsonb" if _sql_type(column) == "jsonb" else f"v.{column}"


def _arrays(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    arrays: dict[str, list[Any]] = {}
    for column in columns:
        values = [row[column] for row in rows]
        if _sql_type(column) == "jsonb":
            values = [None if value is None else json.dumps(value) for value in values]
        arrays[column] = values
    return arrays


@functools.cache
def _insert_rows(columns: tuple[str, ...]) -> TextClause:
    """Insert rows, skipping one whose project already has a job with its idempotency key or whose id (derived
    from that key) exists (of two racing submits with the same key, ON CONFLICT makes the second wait for
    the first to commit, then insert nothing); returns the ids inserted. No conflict target: both unique
    indexes arbitrate, so a race on either skips the row rather than fail the batch."""
    return text(
        f"INSERT INTO {jobs.name} ({', '.join(columns)}) "
        f"SELECT {', '.join(_value(column) for column in columns)} FROM {_unnest(columns)} "
        "ON CONFLICT DO NOTHING RETURNING id"
    )


@functools.cache
def _update_rows(columns: tuple[str, ...]) -> TextClause:
    """Set `columns` on many rows, each only if it holds an older version than its update's first. The check
    and the write are one statement, so api processes applying events of one job concurrently cannot both
    pass the check."""
    assignments = ", ".join(f"{column} = {_value(column)}" for column in columns)
    source = _unnest(columns, extra=[("p_job_id", "text"), ("p_version", "int")])
    return text(
        f"UPDATE {jobs.name} AS j SET {assignments} FROM {source} "
        "WHERE j.id = v.p_job_id AND j.version < v.p_version RETURNING j.id, j.framework"
    )


@dataclass(frozen=True)
class PoolLoad:
    waiting: int = 0
    running: int = 0
    oldest_waiting_since: datetime | None = None


async def pool_loads(conn: AsyncConnection) -> dict[str, PoolLoad]:
    """Per pool, of every project: jobs waiting (QUEUED) and running, and when the oldest waiting one was
    submitted."""
    queued, running = JobState.QUEUED.value, JobState.RUNNING.value
    statement = (
        select(
            jobs.c.pool,
            func.count().filter(jobs.c.state == queued),
            func.count().filter(jobs.c.state == running),
            func.min(jobs.c.created_at).filter(jobs.c.state == queued),
        )
        .where(jobs.c.state.in_((queued, running)))
        .group_by(jobs.c.pool)
    )
    rows = (await conn.execute(statement)).all()
    return {pool: PoolLoad(waiting, running_, oldest) for pool, waiting, running_, oldest in rows}


@dataclass(frozen=True, slots=True)
class QueuePlace:
    """A waiting job's place in its pool's queue (1: the next one a runner takes) and the jobs running on
    that pool, of every project: a pool's queue is shared."""

    position: int
    running: int


# Both read `ix_api_jobs_pool_active` (a pool's QUEUED and RUNNING jobs in queue order) alone. A job in a
# retry's backoff has no `queued_at`, so it is in no place, and no job counts it ahead of itself.
_PLACE_OF_ONE = text(
    f"SELECT (SELECT count(*) FROM {jobs.name} WHERE pool = :pool AND state = 'QUEUED' "
    "AND (queued_at, id) < (:queued_at, :id)) + 1, "
    f"(SELECT count(*) FROM {jobs.name} WHERE pool = :pool AND state = 'RUNNING')"
)
_PLACES = text(
    "SELECT w.id, w.position, coalesce(r.running, 0) FROM ("
    "SELECT id, pool, row_number() OVER (PARTITION BY pool ORDER BY queued_at, id) AS position "
    f"FROM {jobs.name} "
    "WHERE state = 'QUEUED' AND queued_at IS NOT NULL AND pool = ANY(CAST(:pools AS text[]))"
    ") AS w LEFT JOIN ("
    f"SELECT pool, count(*) AS running FROM {jobs.name} "
    "WHERE state = 'RUNNING' AND pool = ANY(CAST(:pools AS text[])) GROUP BY pool"
    ") AS r ON r.pool = w.pool WHERE w.id = ANY(CAST(:ids AS text[]))"
)


_WAITING_COLUMNS = ("id", "state", "pool", "attempt", "max_attempts", "reason", "queued_at", "retry_at")
_WAITING_JOB = select(*(jobs.c[column] for column in _WAITING_COLUMNS)).where(jobs.c.id == bindparam("id"))


async def waiting_job(conn: AsyncConnection, job_id: str) -> Job | None:
    """The columns of a job that say whether and where it waits (`services.api.pending`), as a plain
    (transient) `Job`."""
    row = (await conn.execute(_WAITING_JOB, {"id": job_id})).first()
    return None if row is None else Job(**row._mapping)


async def queue_places(
    conn: AsyncConnection, waiting: Sequence[tuple[str, str, datetime]]
) -> dict[str, QueuePlace]:
    """The places of waiting jobs, given as (id, pool, queued_at), by id; one statement. One job costs a count
    of the jobs ahead of it; several (a page), one pass over the queues of their pools."""
    if not waiting:
        return {}
    if len(waiting) == 1:
        [(job_id, pool, queued_at)] = waiting
        parameters = {"id": job_id, "pool": pool, "queued_at": queued_at}
        position, running = (await conn.execute(_PLACE_OF_ONE, parameters)).one()
        return {job_id: QueuePlace(int(position), int(running))}
    parameters_many = {
        "ids": [job_id for job_id, _, _ in waiting],
        "pools": sorted({pool for _, pool, _ in waiting}),
    }
    rows = await conn.execute(_PLACES, parameters_many)
    return {job_id: QueuePlace(int(position), int(running)) for job_id, position, running in rows}


async def list_jobs(
    session: AsyncSession,
    project_id: str,
    state: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
    framework: str | None = None,
    pool: str | None = None,
) -> list[Job]:
    """Newest first; `after` is the (created_at, id) of the last job of the previous page. Without
    `framework`, all but dataset validation jobs."""
    statement = select(Job).where(Job.project_id == project_id)
    if framework is not None:
        statement = statement.where(Job.framework == framework)
    else:
        statement = statement.where(Job.framework != VALIDATION_FRAMEWORK)
    if state is not None:
        statement = statement.where(Job.state == state)
    if pool is not None:
        statement = statement.where(Job.pool == pool)
    if after is not None:
        created_at, job_id = after
        statement = statement.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    statement = statement.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return list((await session.execute(statement)).scalars())


# Artifacts


async def upsert_artifact(conn: AsyncConnection, values: dict[str, Any]) -> None:
    statement = insert(Artifact).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["job_id", "name"],
        set_={
            "size": statement.excluded.size,
            "sha256": statement.excluded.sha256,
            "storage_key": statement.excluded.storage_key,
        },
    )
    await conn.execute(statement)


async def list_artifacts(session: AsyncSession, job_id: str) -> list[Artifact]:
    statement = select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.name)
    return list((await session.execute(statement)).scalars())


async def get_artifact(session: AsyncSession, job_id: str, name: str) -> Artifact | None:
    statement = select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name)
    return (await session.execute(statement)).scalar_one_or_none()


# Models (starting weights)


async def add_model(session: AsyncSession, model: UploadedModel) -> None:
    session.add(model)
    await session.flush()


async def get_model(session: AsyncSession, project_id: str, model_id: str) -> UploadedModel | None:
    statement = select(UploadedModel).where(
        UploadedModel.id == model_id, UploadedModel.project_id == project_id
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def list_models(session: AsyncSession, project_id: str, limit: int) -> list[UploadedModel]:
    statement = (
        select(UploadedModel)
        .where(UploadedModel.project_id == project_id)
        .order_by(UploadedModel.created_at.desc(), UploadedModel.id)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def model_exists(conn: AsyncConnection, project_id: str, model_id: str) -> bool:
    statement = select(UploadedModel.id).where(
        UploadedModel.id == model_id, UploadedModel.project_id == project_id
    )
    return (await conn.execute(statement)).first() is not None


async def artifact_of_project_exists(conn: AsyncConnection, project_id: str, job_id: str, name: str) -> bool:
    statement = (
        select(Artifact.name)
        .join(Job, Job.id == Artifact.job_id)
        .where(Job.project_id == project_id, Artifact.job_id == job_id, Artifact.name == name)
    )
    return (await conn.execute(statement)).first() is not None
