"""The api's decisions: who is calling, what a submit/cancel does, how an event changes the read model.

Functions take the caller's session (submit, the hot path: its plain connection) and never commit (the route
or consumer owns the transaction). Nothing here knows about HTTP.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from contracts.commands import CancelJob, DatasetRef, SubmitJob
from contracts.events import JobEvent
from contracts.jobs import EventType, JobState
from contracts.validation import VALIDATION_FRAMEWORK
from services.api import datasets, repository, weights
from services.api.cache import TtlCache
from services.api.errors import Conflict, InvalidField, NotFound, Unauthorized
from services.api.keys import hash_key
from services.api.messaging import CommandPublisher
from services.api.models import Artifact, Job
from services.api.pools import PoolDirectory
from services.api.schemas import JobCreate
from services.api.submits import SubmitWriter
from services.common import storage as storage_keys
from telemetry import metrics, tracing

# Each api process remembers a key's project this long, so revoking a key takes effect within it.
KEY_CACHE_SECONDS = 30.0
# A READY dataset never changes (only READY ones are remembered); this only bounds how long an unused one is.
DATASET_CACHE_SECONDS = 600.0


@dataclass(frozen=True)
class ProjectRef:
    """The project an API key belongs to (immutable, so one instance can serve many requests)."""

    id: str
    name: str


@dataclass
class Lookups:
    """What nearly every request looks up, remembered in the process; misses (unknown keys, unknown or not yet
    READY datasets) are not remembered, so a new key or dataset works at once."""

    projects: TtlCache[str, ProjectRef] = field(default_factory=lambda: TtlCache(KEY_CACHE_SECONDS))
    datasets: TtlCache[tuple[str, str], DatasetRef] = field(
        default_factory=lambda: TtlCache(DATASET_CACHE_SECONDS)
    )


# Auth


async def authenticate(
    sessions: async_sessionmaker[AsyncSession], lookups: Lookups, api_key: str | None
) -> ProjectRef:
    """The key's project; the database is asked (in a session of its own) only when the key is not cached."""
    if not api_key:
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    key_hash = hash_key(api_key)
    project = lookups.projects.get(key_hash)
    if project is None:
        async with sessions() as session:
            row = await repository.project_by_key_hash(session, key_hash)
        if row is None:
            raise Unauthorized("invalid API key")
        project = ProjectRef(*row)
        lookups.projects.put(key_hash, project)
    return project


# Jobs


@dataclass(frozen=True)
class Submitted:
    # The job's row, its columns by name: a submit answers from the values it inserted, not an ORM object.
    row: Mapping[str, Any]
    created: bool


async def _dataset_ref(engine: AsyncEngine, lookups: Lookups, project_id: str, reference: str) -> DatasetRef:
    """The READY dataset `reference` names (see `datasets.usable`, which refuses any other)."""
    ref = lookups.datasets.get((project_id, reference))
    if ref is None:
        async with engine.connect() as conn:
            ref, lasting = await datasets.usable(conn, project_id, reference)
        if lasting:
            lookups.datasets.put((project_id, reference), ref)
    return ref


def ids_for_idempotency_key(project_id: str, key: str) -> tuple[str, str]:
    """The job id and trace id of the job a project submits with this `Idempotency-Key`.

    Derived, not drawn: a retry after the api died (or its commit failed) between the PubAck and the commit
    finds no row, yet publishes the same `SubmitJob` (`Nats-Msg-Id = job_id`: JetStream drops the copy
    within its window, the scheduler ignores a submit for a job it has after it) and writes the row the
    first request meant to write.
    """
    digest = hashlib.sha256(f"{project_id}\n{key}".encode()).hexdigest()
    return digest[:32], digest[32:]


async def _job_with_idempotency_key(
    engine: AsyncEngine, project_id: str, key: str, job_id: str
) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        return await repository.job_by_idempotency_key(conn, project_id, key, job_id)


@dataclass(frozen=True)
class Submitting:
    """What a submit needs, in one place (the submit route resolves one dependency, not three)."""

    engine: AsyncEngine
    writer: SubmitWriter
    lookups: Lookups
    pools: PoolDirectory


async def submit_job(
    submitting: Submitting,
    project_id: str,
    request: JobCreate,
    idempotency_key: str | None,
    now: datetime,
) -> Submitted:
    """Write the read-model row and publish `SubmitJob` (see `SubmitWriter`); return once both are durable.

    With an idempotency key, a retry (also a concurrent one) returns the job of the first request.
    """
    engine = submitting.engine
    if idempotency_key is not None:
        job_id, trace_id = ids_for_idempotency_key(project_id, idempotency_key)
        existing = await _job_with_idempotency_key(engine, project_id, idempotency_key, job_id)
        if existing is not None:
            return Submitted(existing, created=False)
    else:
        job_id, trace_id = uuid.uuid4().hex, tracing.new_trace_id()
    await submitting.pools.require(request.pool)
    dataset = await _dataset_ref(engine, submitting.lookups, project_id, request.dataset)
    spec = request.spec_for(dataset)
    if request.weights is not None:
        async with engine.connect() as conn:
            await weights.check_reference(conn, project_id, request.weights)
    values: dict[str, Any] = {
        "id": job_id,
        "project_id": project_id,
        "name": request.name,
        "state": JobState.PENDING.value,
        "attempt": 0,
        "max_attempts": request.max_attempts,
        "version": 0,
        "framework": spec.framework,
        "task": spec.task,
        "model": spec.model,
        "hyperparameters": spec.model_dump(mode="json")["hyperparameters"],
        "dataset_id": dataset.id,
        "dataset_version": dataset.version,
        "pool": request.pool,
        "trace_id": trace_id,
        "created_at": now,
        "updated_at": now,
        "idempotency_key": idempotency_key,
        "weights": request.weights,
        "export": request.export,
    }
    command = SubmitJob(
        job_id=job_id,
        project_id=project_id,
        name=request.name,
        spec=spec,
        dataset=dataset,
        pool=request.pool,
        max_attempts=request.max_attempts,
        trace_id=trace_id,
        submitted_at=now,
        idempotency_key=idempotency_key,
        queue_timeout=request.queue_timeout,
        max_preemptions=request.max_preemptions,
    )
    with tracing.job_root("publish submit", trace_id, {"vtp.job_id": job_id, "vtp.pool": request.pool}):
        created = await submitting.writer.submit(values, command)
    if not created:
        # Only a keyed submit can conflict (its key, or its derived id), and that row is committed by then.
        assert idempotency_key is not None
        existing = await _job_with_idempotency_key(engine, project_id, idempotency_key, job_id)
        if existing is None:  # pragma: no cover
            raise Conflict("a concurrent request with the same Idempotency-Key is in progress")
        return Submitted(existing, created=False)
    metrics.JOBS_SUBMITTED.labels(framework=spec.framework, pool=request.pool).inc()
    # The row is exactly what was inserted: answer from the values rather than read it back.
    return Submitted(values, created=True)


async def get_job(session: AsyncSession, project_id: str, job_id: str) -> Job:
    job = await repository.get_job(session, project_id, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


async def cancel_job(
    session: AsyncSession,
    publisher: CommandPublisher,
    project_id: str,
    job_id: str,
    reason: str | None,
    now: datetime,
) -> Job:
    job = await get_job(session, project_id, job_id)
    if JobState(job.state).terminal:
        raise Conflict(
            f"job {job_id} is already {job.state} and cannot be cancelled",
            {"job_id": job_id, "state": job.state},
        )
    await publisher.cancel(
        CancelJob(
            job_id=job_id, project_id=project_id, reason=reason, trace_id=job.trace_id, requested_at=now
        )
    )
    return job


def encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CURSOR_YEARS = (1970, 9000)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        after = datetime.fromisoformat(created_at)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidField(("query", "cursor"), "invalid cursor") from exc
    # Only what encode_cursor writes: an aware time a job can have, and an id (a crafted year 1 or 9999, a
    # naive time or a NUL would otherwise reach the database as a query it cannot run).
    if after.tzinfo is None or not CURSOR_YEARS[0] <= after.year <= CURSOR_YEARS[1]:
        raise InvalidField(("query", "cursor"), "invalid cursor")
    if not isinstance(job_id, str) or not job_id.isascii() or not job_id.isprintable() or len(job_id) > 200:
        raise InvalidField(("query", "cursor"), "invalid cursor")
    return after, job_id


async def list_jobs(
    session: AsyncSession,
    project_id: str,
    state: JobState | None,
    limit: int,
    cursor: str | None,
    framework: str | None = None,
    pool: str | None = None,
) -> tuple[list[Job], str | None]:
    after = decode_cursor(cursor) if cursor else None
    state_value = state.value if state else None
    rows = await repository.list_jobs(session, project_id, state_value, limit + 1, after, framework, pool)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]) if len(rows) > limit else None
    return page, next_cursor


# Read model


def _job_from_submitted(event: JobEvent) -> dict[str, Any]:
    payload = event.payload
    spec = payload.get("spec") or {}
    dataset = payload.get("dataset")
    dataset_id = dataset.get("id") if isinstance(dataset, dict) else dataset
    return {
        "id": event.job_id,
        "project_id": event.project_id,
        "name": payload.get("name"),
        "state": event.state.value,
        "attempt": event.attempt,
        "max_attempts": int(payload.get("max_attempts") or 1),
        "version": 0,
        "framework": spec.get("framework", ""),
        "task": spec.get("task", ""),
        "model": spec.get("model", ""),
        "hyperparameters": spec.get("hyperparameters") or {},
        "dataset_id": str(dataset_id or ""),
        "dataset_version": dataset.get("version") if isinstance(dataset, dict) else None,
        "weights": spec.get("weights"),
        "export": spec.get("export"),
        "pool": str(payload.get("pool") or ""),
        "trace_id": event.trace_id,
        "created_at": event.time,
        "updated_at": event.time,
        # Restored with the row, so a retry of the submit still finds this job by its key.
        "idempotency_key": payload.get("idempotency_key"),
    }


def _changes(event: JobEvent) -> dict[str, Any]:
    """How one event changes a job row (given that it is newer than what the row has seen)."""
    changes: dict[str, Any] = {
        "state": event.state.value,
        "attempt": event.attempt,
        "version": event.version,
        "updated_at": event.time,
    }
    payload = event.payload
    if event.type == EventType.SUBMITTED:
        # The submit's time as the scheduler recorded it: a row written by a retry of a submit whose first
        # request died after its PubAck holds the retry's time until then.
        changes["created_at"] = event.time
    elif event.type == EventType.PROGRESS:
        changes["metrics"] = {
            "epoch": payload.get("epoch"),
            "epochs": payload.get("epochs"),
            **(payload.get("metrics") or {}),
        }
    elif event.type == EventType.SUCCEEDED:
        changes["final_metrics"] = payload.get("metrics") or {}
        changes["reason"] = None
    elif event.type in (EventType.FAILED, EventType.CANCELLED, EventType.RETRYING):
        changes["reason"] = payload.get("reason")
    elif event.type == EventType.PREEMPTED:
        changes["reason"] = payload.get("reason")
        if isinstance(payload.get("preemptions"), int):
            changes["preemptions"] = payload["preemptions"]
    # Where the job waits (`services.api.pending`): in its pool's queue from job.queued, in no queue while a
    # retry's backoff runs.
    if event.type == EventType.QUEUED:
        changes["queued_at"], changes["retry_at"] = event.time, None
    elif event.type == EventType.RETRYING:
        changes["queued_at"], changes["retry_at"] = None, _moment(payload.get("retry_at"), event.time)
    return changes


def _moment(value: Any, default: datetime) -> datetime:
    """An aware ISO time from an event's payload; `default` for anything else."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    return moment if moment is not None and moment.tzinfo is not None else default


async def apply_event(conn: AsyncConnection, event: JobEvent) -> None:
    """Apply one job event to the read model. Idempotent: an event at or below the stored version changes
    nothing (artifacts are keyed by name, so re-recording one is harmless)."""
    if event.type == EventType.ARTIFACT and event.payload.get("name"):
        if not await repository.job_exists(conn, event.job_id):
            return
        payload = event.payload
        await repository.upsert_artifact(
            conn,
            {
                "job_id": event.job_id,
                "name": payload["name"],
                "size": int(payload.get("size") or 0),
                "sha256": str(payload.get("sha256") or ""),
                "storage_key": payload.get("storage_key")
                or storage_keys.artifact_key(event.job_id, payload["name"]),
                "created_at": event.time,
            },
        )
    update = repository.RowUpdate(event.job_id, event.version, _changes(event))
    framework = (await repository.update_jobs_if_older(conn, [update])).get(event.job_id)
    if framework is None and event.type == EventType.SUBMITTED:
        # Normally the row exists (written at submit); this covers a submit whose commit was lost.
        await repository.insert_job_if_missing(conn, _job_from_submitted(event))
        framework = (await repository.update_jobs_if_older(conn, [update])).get(event.job_id)
    await _follow_validation(conn, framework, [event])


async def apply_job_events(conn: AsyncConnection, events: list[JobEvent]) -> None:
    """Apply events that arrived together, of any number of jobs (the scheduler publishes a decision's
    events at once: `job.submitted` with `job.queued`; a fast trainer's callbacks follow one another closely).

    When a job's row holds none of its events yet, which is the usual case, their changes merged in version
    order apply as one row update: each event sets values outright, so the newest value of each column is
    what applying them one by one would leave. Those row updates go to the database together, one statement
    per set of columns changed. The rest (a redelivery, a row still missing, artifacts) apply one by one.
    """
    by_job: dict[str, dict[int, JobEvent]] = {}
    for event in events:
        by_job.setdefault(event.job_id, {})[event.version] = event
    merged: dict[str, list[JobEvent]] = {}
    one_by_one: list[list[JobEvent]] = []
    for job_id, versions in by_job.items():
        ordered = [versions[version] for version in sorted(versions)]
        if any(event.type == EventType.ARTIFACT for event in ordered):
            one_by_one.append(ordered)
        else:
            merged[job_id] = ordered
    updates = [
        repository.RowUpdate(job_id, ordered[0].version, _merged_changes(ordered))
        for job_id, ordered in merged.items()
    ]
    frameworks = await repository.update_jobs_if_older(conn, updates)
    for job_id, ordered in merged.items():
        if job_id in frameworks:
            await _follow_validation(conn, frameworks[job_id], ordered)
        else:
            one_by_one.append(ordered)
    for ordered in one_by_one:
        for event in ordered:
            await apply_event(conn, event)


def _merged_changes(ordered: list[JobEvent]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for event in ordered:
        merged.update(_changes(event))
    return merged


async def _follow_validation(conn: AsyncConnection, framework: str | None, events: list[JobEvent]) -> None:
    """A dataset validation job's end, among the events just applied, settles its dataset."""
    if framework != VALIDATION_FRAMEWORK:
        return
    for event in events:
        if event.type.terminal:
            await datasets.follow_validation(conn, event)


async def stored_version(conn: AsyncConnection, job_id: str) -> int:
    """The version of the last event the read model applied to the job (0: none, or no such job)."""
    return await repository.job_version(conn, job_id)


# Artifacts


async def list_artifacts(session: AsyncSession, project_id: str, job_id: str) -> list[Artifact]:
    await get_job(session, project_id, job_id)
    return await repository.list_artifacts(session, job_id)


async def get_artifact(session: AsyncSession, project_id: str, job_id: str, name: str) -> Artifact:
    await get_job(session, project_id, job_id)
    artifact = await repository.get_artifact(session, job_id, name)
    if artifact is None:
        raise NotFound(f"artifact {name!r} of job {job_id} not found")
    return artifact
