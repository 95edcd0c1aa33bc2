"""All of the scheduler's SQL. Functions take an open connection; the caller owns the transaction.

Statements are built once with bind parameters: the per-input path is hot (a thousand inputs a second on a
small box), and building a statement costs more than executing it. A batch's transaction is two statements
between BEGIN and COMMIT: `lock_jobs` (lock, what is recorded and owed, delete what was sent) and
`write_batch` (every row the batch writes), since on a small box each round trip costs a context switch on
both sides, and the transaction's row locks are held for all of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String, any_, bindparam, delete, func, insert, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.commands import DatasetRef
from contracts.jobs import JobState, parse_job_spec
from services.scheduler.core import Decision, Input, Job, Policy
from services.scheduler.core.codec import encode
from services.scheduler.models import InputRow, JobRow, OutboxRow
from services.scheduler.publisher import Outgoing

# The outcome of an input the shell refused before deciding it (`decide` rejects; the shell refuses).
REFUSED = "refused"

jobs = JobRow.__table__
inputs = InputRow.__table__
outbox = OutboxRow.__table__

_JOB_COLUMNS = (
    jobs.c.job_id,
    jobs.c.project_id,
    jobs.c.name,
    jobs.c.state,
    jobs.c.attempt,
    jobs.c.version,
    jobs.c.spec,
    jobs.c.dataset,
    jobs.c.pool,
    jobs.c.max_attempts,
    jobs.c.trace_id,
    jobs.c.heartbeat_deadline,
    jobs.c.retry_at,
    jobs.c.state_since,
    jobs.c.queue_timeout,
    jobs.c.queue_deadline,
    jobs.c.preemptions,
    jobs.c.max_preemptions,
)

# Arrays, not expanding IN lists: one statement (and one prepared statement) whatever the batch size.
_IDS = ARRAY(String)
_OUTBOX_IDS = ARRAY(BigInteger)
# Which of the batch's source messages each job has already recorded (redeliveries after a commit), and
# which outbox rows it still has, read along with the lock: two round trips per batch fewer.
_RECORDED = (
    select(func.array_agg(inputs.c.source))
    .where(inputs.c.job_id == jobs.c.job_id, inputs.c.source == any_(bindparam("p_sources", type_=_IDS)))
    .scalar_subquery()
    .label("recorded")
)
_OUTBOX_ROWS = (
    select(func.array_agg(outbox.c.id))
    .where(outbox.c.job_id == jobs.c.job_id)
    .scalar_subquery()
    .label("outbox_ids")
)
# Rows whose PubAcks came since the last batch, deleted in this one (the lock statement sees them still:
# one snapshot; the caller knows them as sent).
_DELETE_SENT = delete(outbox).where(outbox.c.id == any_(bindparam("p_sent", type_=_OUTBOX_IDS))).cte("sent")
_LOCK = (
    select(*_JOB_COLUMNS, _RECORDED, _OUTBOX_ROWS)
    .where(jobs.c.job_id == any_(bindparam("p_job_ids", type_=_IDS)))
    .order_by(jobs.c.job_id)
    .with_for_update(of=jobs)
    .add_cte(_DELETE_SENT)
)
# Every row a batch writes, in one statement: arrays in, one row per element out of `unnest`. The
# statement's parts see one snapshot and touch different rows (new jobs, locked jobs, appended inputs and
# outbox rows). Identity values are drawn in `ORDER BY ord` order, so inputs and outbox rows keep the
# order they were decided in (replay and the relay read them by id).
_WRITE_BATCH = text(
    """
WITH new_jobs AS (
    INSERT INTO scheduler_jobs (job_id, project_id, name, state, attempt, version, spec, dataset, pool,
                                max_attempts, trace_id, heartbeat_deadline, retry_at, state_since,
                                queue_timeout, queue_deadline, preemptions, max_preemptions)
    SELECT u.job_id, u.project_id, u.name, u.state, u.attempt, u.version, CAST(u.spec AS jsonb),
           CAST(u.dataset AS jsonb), u.pool, u.max_attempts, u.trace_id, u.heartbeat_deadline, u.retry_at,
           u.state_since, u.queue_timeout, u.queue_deadline, u.preemptions, u.max_preemptions
    FROM unnest(CAST(:n_job_id AS text[]), CAST(:n_project_id AS text[]), CAST(:n_name AS text[]),
                CAST(:n_state AS text[]), CAST(:n_attempt AS int[]), CAST(:n_version AS int[]),
                CAST(:n_spec AS text[]), CAST(:n_dataset AS text[]), CAST(:n_pool AS text[]),
                CAST(:n_max_attempts AS int[]), CAST(:n_trace_id AS text[]),
                CAST(:n_heartbeat_deadline AS timestamptz[]), CAST(:n_retry_at AS timestamptz[]),
                CAST(:n_state_since AS timestamptz[]), CAST(:n_queue_timeout AS float8[]),
                CAST(:n_queue_deadline AS timestamptz[]), CAST(:n_preemptions AS int[]),
                CAST(:n_max_preemptions AS int[]))
         AS u(job_id, project_id, name, state, attempt, version, spec, dataset, pool, max_attempts,
              trace_id, heartbeat_deadline, retry_at, state_since, queue_timeout, queue_deadline,
              preemptions, max_preemptions)
), changed_jobs AS (
    UPDATE scheduler_jobs AS j
    SET state = u.state, attempt = u.attempt, version = u.version,
        heartbeat_deadline = u.heartbeat_deadline, retry_at = u.retry_at, state_since = u.state_since,
        queue_deadline = u.queue_deadline, preemptions = u.preemptions, updated_at = now()
    FROM unnest(CAST(:c_job_id AS text[]), CAST(:c_state AS text[]), CAST(:c_attempt AS int[]),
                CAST(:c_version AS int[]), CAST(:c_heartbeat_deadline AS timestamptz[]),
                CAST(:c_retry_at AS timestamptz[]), CAST(:c_state_since AS timestamptz[]),
                CAST(:c_queue_deadline AS timestamptz[]), CAST(:c_preemptions AS int[]))
         AS u(job_id, state, attempt, version, heartbeat_deadline, retry_at, state_since, queue_deadline,
              preemptions)
    WHERE j.job_id = u.job_id
), recorded AS (
    INSERT INTO scheduler_inputs (job_id, source, kind, body, policy, outcome, reason, version, events)
    SELECT u.job_id, u.source, u.kind, CAST(u.body AS jsonb), CAST(:policy AS jsonb), u.outcome,
           u.reason, u.version, u.events
    FROM unnest(CAST(:i_job_id AS text[]), CAST(:i_source AS text[]), CAST(:i_kind AS text[]),
                CAST(:i_body AS text[]), CAST(:i_outcome AS text[]), CAST(:i_reason AS text[]),
                CAST(:i_version AS int[]), CAST(:i_events AS int[]))
         WITH ORDINALITY AS u(job_id, source, kind, body, outcome, reason, version, events, ord)
    ORDER BY u.ord
)
INSERT INTO scheduler_outbox (job_id, stream, subject, msg_id, headers, payload)
SELECT u.job_id, u.stream, u.subject, u.msg_id, CAST(u.headers AS jsonb), u.payload
FROM unnest(CAST(:o_job_id AS text[]), CAST(:o_stream AS text[]), CAST(:o_subject AS text[]),
            CAST(:o_msg_id AS text[]), CAST(:o_headers AS text[]), CAST(:o_payload AS bytea[]))
     WITH ORDINALITY AS u(job_id, stream, subject, msg_id, headers, payload, ord)
ORDER BY u.ord
RETURNING id
"""
)
_INSERT_INPUT = insert(inputs)
_INPUTS = (
    select(inputs.c.id, inputs.c.kind, inputs.c.body, inputs.c.policy, inputs.c.outcome, inputs.c.reason)
    .where(inputs.c.job_id == bindparam("p_job_id"))
    .order_by(inputs.c.id)
)
_OUTBOX_COLUMNS = (
    outbox.c.id,
    outbox.c.job_id,
    outbox.c.stream,
    outbox.c.subject,
    outbox.c.headers,
    outbox.c.payload,
)
_OWED = (
    select(*_OUTBOX_COLUMNS)
    .where(outbox.c.id == any_(bindparam("p_ids", type_=_OUTBOX_IDS)))
    .order_by(outbox.c.id)
)
_LEFTOVERS = (
    select(*_OUTBOX_COLUMNS, outbox.c.created_at)
    .where(outbox.c.created_at <= bindparam("p_before"))
    .order_by(outbox.c.id)
    .limit(bindparam("p_limit"))
)
_DELETE_OUTBOX = delete(outbox).where(outbox.c.id == any_(bindparam("p_ids", type_=_OUTBOX_IDS)))
_DUE = (
    select(jobs.c.job_id)
    .where(
        or_(
            jobs.c.heartbeat_deadline <= bindparam("p_now"),
            jobs.c.retry_at <= bindparam("p_now"),
            jobs.c.queue_deadline <= bindparam("p_now"),
        )
    )
    .limit(bindparam("p_limit"))
)


def _to_job(row: Any) -> Job:
    return Job(
        job_id=row.job_id,
        project_id=row.project_id,
        name=row.name,
        state=JobState(row.state),
        attempt=row.attempt,
        version=row.version,
        spec=parse_job_spec(row.spec),
        dataset=DatasetRef.model_validate(row.dataset),
        pool=row.pool,
        max_attempts=row.max_attempts,
        trace_id=row.trace_id,
        heartbeat_deadline=row.heartbeat_deadline,
        retry_at=row.retry_at,
        state_since=row.state_since,
        queue_timeout=row.queue_timeout,
        queue_deadline=row.queue_deadline,
        preemptions=row.preemptions,
        max_preemptions=row.max_preemptions,
    )


@dataclass(frozen=True)
class Locked:
    """What `lock_jobs` read under the jobs' row locks."""

    jobs: dict[str, Job]
    # (job, source message) inputs already recorded: redeliveries after a commit.
    recorded: set[tuple[str, str]]
    # The outbox rows these jobs still have, sent or not (the caller knows which it sent), oldest first.
    outbox_ids: list[int]


async def lock_jobs(
    conn: AsyncConnection, job_ids: Sequence[str], sources: Sequence[str], sent: Sequence[int] = ()
) -> Locked:
    """Load jobs and hold their row locks until the transaction ends, so inputs for one job apply one at a
    time. Locked in job id order, so two transactions never wait on each other in a cycle.

    In the same statement: which inputs are recorded already, which outbox rows the jobs have, and the
    deletion of the outbox rows `sent` (whose PubAcks came), which commits with the transaction."""
    params = {"p_job_ids": list(job_ids), "p_sources": list(sources), "p_sent": list(sent)}
    rows = (await conn.execute(_LOCK, params)).all()
    return Locked(
        jobs={row.job_id: _to_job(row) for row in rows},
        recorded={(row.job_id, source) for row in rows for source in row.recorded or ()},
        outbox_ids=sorted(outbox_id for row in rows for outbox_id in row.outbox_ids or ()),
    )


def _json(value: Any) -> str:
    # As SQLAlchemy's JSONB type serialises: a non-finite float becomes `NaN`, which Postgres refuses
    # (SQLSTATE 22P02), so an input holding one is refused, not stored as something else.
    return json.dumps(value)


def _columns(rows: Sequence[Mapping[str, Any]], names: Sequence[str], prefix: str) -> dict[str, list[Any]]:
    """Rows as one array per column, as `unnest` takes them."""
    return {f"{prefix}_{name}": [row[name] for row in rows] for name in names}


_NEW_JOB_COLUMNS = (
    "job_id",
    "project_id",
    "name",
    "state",
    "attempt",
    "version",
    "spec",
    "dataset",
    "pool",
    "max_attempts",
    "trace_id",
    "heartbeat_deadline",
    "retry_at",
    "state_since",
    "queue_timeout",
    "queue_deadline",
    "preemptions",
    "max_preemptions",
)
_CHANGED_JOB_COLUMNS = (
    "job_id", "state", "attempt", "version", "heartbeat_deadline", "retry_at", "state_since",
    "queue_deadline", "preemptions",
)  # fmt: skip
_INPUT_COLUMNS = ("job_id", "source", "kind", "body", "outcome", "reason", "version", "events")
_OUTBOX_ROW_COLUMNS = ("job_id", "stream", "subject", "msg_id", "headers", "payload")


def _state(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "state": job.state.value,
        "attempt": job.attempt,
        "version": job.version,
        "heartbeat_deadline": job.heartbeat_deadline,
        "retry_at": job.retry_at,
        "state_since": job.state_since,
        "queue_deadline": job.queue_deadline,
        "preemptions": job.preemptions,
    }


def _new_job(job: Job) -> dict[str, Any]:
    return {
        **_state(job),
        "project_id": job.project_id,
        "name": job.name,
        "spec": _json(job.spec.model_dump(mode="json")),
        "dataset": _json(job.dataset.model_dump(mode="json")),
        "pool": job.pool,
        "max_attempts": job.max_attempts,
        "trace_id": job.trace_id,
        "queue_timeout": job.queue_timeout,
        "max_preemptions": job.max_preemptions,
    }


def _input(command: Input, source: str | None, decision: Decision) -> dict[str, Any]:
    kind, body = encode(command)
    return {
        "job_id": command.job_id,
        "source": source,
        "kind": kind,
        "body": _json(body),
        "outcome": "applied" if decision.applied else "rejected",
        "reason": decision.rejected_reason,
        "version": decision.state.version if decision.state is not None else 0,
        "events": len(decision.events),
    }


def _outbox_row(message: Outgoing) -> dict[str, Any]:
    return {
        "job_id": message.job_id,
        "stream": message.stream,
        "subject": message.subject,
        "msg_id": message.msg_id,
        "headers": _json(message.headers),
        "payload": message.payload,
    }


async def write_batch(
    conn: AsyncConnection,
    before: Mapping[str, Job],
    after: Mapping[str, Job | None],
    decided: Sequence[tuple[Input, str | None, Decision]],
    messages: Sequence[Outgoing],
    policy: Policy,
) -> list[Outgoing]:
    """Write what a batch decided, in one statement: the new jobs, the changed ones, the inputs in the
    order they were applied, and the messages the decisions owe the stream (the outbox). Returns the
    messages with their outbox ids."""
    new = [_new_job(job) for job_id, job in after.items() if job is not None and job_id not in before]
    changed = [
        _state(job)
        for job_id, job in after.items()
        if job is not None and job_id in before and job != before[job_id]
    ]
    if not (new or changed or decided or messages):
        return []
    params = {
        **_columns(new, _NEW_JOB_COLUMNS, "n"),
        **_columns(changed, _CHANGED_JOB_COLUMNS, "c"),
        **_columns([_input(*entry) for entry in decided], _INPUT_COLUMNS, "i"),
        **_columns([_outbox_row(m) for m in messages], _OUTBOX_ROW_COLUMNS, "o"),
        "policy": _json(asdict(policy)),
    }
    # Identity values follow the messages' order (see _WRITE_BATCH); RETURNING's order is not promised.
    ids = sorted((await conn.execute(_WRITE_BATCH, params)).scalars().all())
    return [replace(m, outbox_id=outbox_id) for m, outbox_id in zip(messages, ids, strict=True)]


_JOB = select(*_JOB_COLUMNS).where(jobs.c.job_id == bindparam("p_job_id"))


async def get_job(conn: AsyncConnection, job_id: str) -> Job | None:
    """A job's committed state, without a lock."""
    row = (await conn.execute(_JOB, {"p_job_id": job_id})).one_or_none()
    return None if row is None else _to_job(row)


async def job_inputs(conn: AsyncConnection, job_id: str) -> list[Any]:
    """A job's recorded inputs in the order they were applied."""
    return list((await conn.execute(_INPUTS, {"p_job_id": job_id})).all())


_QUEUED_PER_POOL = (
    select(jobs.c.pool, func.count()).where(jobs.c.state == JobState.QUEUED.value).group_by(jobs.c.pool)
)


async def queued_per_pool(conn: AsyncConnection) -> dict[str, int]:
    """How many jobs wait (QUEUED, a retry's backoff included) on each pool that has any."""
    return {pool: count for pool, count in (await conn.execute(_QUEUED_PER_POOL)).all()}


async def due_jobs(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """Jobs whose heartbeat deadline passed, whose retry time came or whose wait for a runner ran out
    (terminal jobs have none of these)."""
    return list((await conn.execute(_DUE, {"p_now": now, "p_limit": limit})).scalars().all())


def _outgoing(row: Any) -> Outgoing:
    return Outgoing(
        job_id=row.job_id,
        stream=row.stream,
        subject=row.subject,
        headers=row.headers,
        payload=row.payload,
        outbox_id=row.id,
    )


async def owed_messages(conn: AsyncConnection, outbox_ids: Sequence[int]) -> list[Outgoing]:
    """Outbox rows earlier commits of the locked jobs still owe the stream (not known to be sent), oldest
    first. Read under the jobs' locks and sent before this transaction's own messages, so a job's events
    reach the stream in version order even when another transaction's send is still under way (the copy
    is dropped as a duplicate)."""
    if not outbox_ids:
        return []
    rows = await conn.execute(_OWED, {"p_ids": list(outbox_ids)})
    return [_outgoing(row) for row in rows]


async def leftover_messages(
    conn: AsyncConnection, before: datetime, limit: int
) -> list[tuple[Outgoing, datetime]]:
    """Outbox messages written before `before` (their sender crashed or failed), oldest first."""
    rows = await conn.execute(_LEFTOVERS, {"p_before": before, "p_limit": limit})
    return [(_outgoing(row), row.created_at) for row in rows]


async def remove_from_outbox(conn: AsyncConnection, outbox_ids: Sequence[int]) -> None:
    if outbox_ids:
        await conn.execute(_DELETE_OUTBOX, {"p_ids": list(outbox_ids)})


async def record_refused(
    conn: AsyncConnection,
    job_id: str,
    source: str | None,
    kind: str,
    body: dict[str, Any],
    reason: str,
    policy: Policy,
) -> None:
    """Append an input the shell refused before deciding it (it cannot be read or stored): outcome
    `refused`, with its reason. Replay shows it and does not feed it to `decide`."""
    row = {
        "job_id": job_id,
        "source": source,
        "kind": kind,
        "body": body,
        "policy": asdict(policy),
        "outcome": REFUSED,
        "reason": reason,
        "version": 0,
        "events": 0,
    }
    await conn.execute(_INSERT_INPUT, [row])
