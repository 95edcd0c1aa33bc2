"""All of the scheduler's SQL. Functions take an open connection; the caller owns the transaction.

Statements are built once with bind parameters: the per-input path is hot (a thousand inputs a second on a
small box), and building a statement costs more than executing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String, any_, bindparam, delete, func, insert, or_, select, update
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
)

# Arrays, not expanding IN lists: one statement (and one prepared statement) whatever the batch size.
_IDS = ARRAY(String)
# Which of the batch's source messages each job has already recorded (redeliveries after a commit), read
# along with the lock: one round trip per batch fewer.
_RECORDED = (
    select(func.array_agg(inputs.c.source))
    .where(inputs.c.job_id == jobs.c.job_id, inputs.c.source == any_(bindparam("p_sources", type_=_IDS)))
    .scalar_subquery()
    .label("recorded")
)
_LOCK = (
    select(*_JOB_COLUMNS, _RECORDED)
    .where(jobs.c.job_id == any_(bindparam("p_job_ids", type_=_IDS)))
    .order_by(jobs.c.job_id)
    .with_for_update(of=jobs)
)
_INSERT_JOB = insert(jobs)
_UPDATE_JOB = (
    update(jobs)
    .where(jobs.c.job_id == bindparam("p_job_id"))
    .values(
        state=bindparam("state"),
        attempt=bindparam("attempt"),
        version=bindparam("version"),
        heartbeat_deadline=bindparam("heartbeat_deadline"),
        retry_at=bindparam("retry_at"),
        updated_at=func.now(),
    )
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
    .where(outbox.c.job_id == any_(bindparam("p_job_ids", type_=_IDS)))
    .order_by(outbox.c.id)
)
_LEFTOVERS = (
    select(*_OUTBOX_COLUMNS, outbox.c.created_at)
    .where(outbox.c.created_at <= bindparam("p_before"))
    .order_by(outbox.c.id)
    .limit(bindparam("p_limit"))
)
_INSERT_OUTBOX = insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True)
_DELETE_OUTBOX = delete(outbox).where(outbox.c.id == any_(bindparam("p_ids", type_=ARRAY(BigInteger))))
_DUE = (
    select(jobs.c.job_id)
    .where(or_(jobs.c.heartbeat_deadline <= bindparam("p_now"), jobs.c.retry_at <= bindparam("p_now")))
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
    )


def _mutable(job: Job) -> dict[str, Any]:
    return {
        "state": job.state.value,
        "attempt": job.attempt,
        "version": job.version,
        "heartbeat_deadline": job.heartbeat_deadline,
        "retry_at": job.retry_at,
    }


async def lock_jobs(
    conn: AsyncConnection, job_ids: Sequence[str], sources: Sequence[str]
) -> tuple[dict[str, Job], set[tuple[str, str]]]:
    """Load jobs and hold their row locks until the transaction ends, so inputs for one job apply one at a
    time. Locked in job id order, so two transactions never wait on each other in a cycle.

    Also which of these (job, source message) inputs are already recorded: redeliveries after a commit."""
    rows = (await conn.execute(_LOCK, {"p_job_ids": list(job_ids), "p_sources": list(sources)})).all()
    recorded = {(row.job_id, source) for row in rows for source in row.recorded or ()}
    return {row.job_id: _to_job(row) for row in rows}, recorded


def _new_job(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "project_id": job.project_id,
        "name": job.name,
        "spec": job.spec.model_dump(mode="json"),
        "dataset": job.dataset.model_dump(mode="json"),
        "pool": job.pool,
        "max_attempts": job.max_attempts,
        "trace_id": job.trace_id,
        **_mutable(job),
    }


async def save_jobs(
    conn: AsyncConnection, before: Mapping[str, Job], after: Mapping[str, Job | None]
) -> None:
    """Write the jobs' new states: insert the new ones, update the changed ones."""
    new = [_new_job(job) for job_id, job in after.items() if job is not None and job_id not in before]
    changed = [
        {"p_job_id": job_id, **_mutable(job)}
        for job_id, job in after.items()
        if job is not None and job_id in before and job != before[job_id]
    ]
    if new:
        await conn.execute(_INSERT_JOB, new)
    if changed:
        await conn.execute(_UPDATE_JOB, changed)


async def record_inputs(
    conn: AsyncConnection, decided: Sequence[tuple[Input, str | None, Decision]], policy: Policy
) -> None:
    """Append inputs to the log, in the order they were applied."""
    if not decided:
        return
    policy_json = asdict(policy)
    rows = []
    for command, source, decision in decided:
        kind, body = encode(command)
        rows.append(
            {
                "job_id": command.job_id,
                "source": source,
                "kind": kind,
                "body": body,
                "policy": policy_json,
                "outcome": "applied" if decision.applied else "rejected",
                "reason": decision.rejected_reason,
                "version": decision.state.version if decision.state is not None else 0,
                "events": len(decision.events),
            }
        )
    await conn.execute(_INSERT_INPUT, rows)


async def job_inputs(conn: AsyncConnection, job_id: str) -> list[Any]:
    """A job's recorded inputs in the order they were applied."""
    return list((await conn.execute(_INPUTS, {"p_job_id": job_id})).all())


async def due_jobs(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """Jobs whose heartbeat deadline passed or whose retry time came (terminal jobs have neither)."""
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


async def add_to_outbox(conn: AsyncConnection, messages: Sequence[Outgoing]) -> list[Outgoing]:
    """Write messages to the outbox in order; return them with their outbox ids."""
    if not messages:
        return []
    rows = [
        {
            "job_id": m.job_id,
            "stream": m.stream,
            "subject": m.subject,
            "msg_id": m.msg_id,
            "headers": m.headers,
            "payload": m.payload,
        }
        for m in messages
    ]
    ids = (await conn.execute(_INSERT_OUTBOX, rows)).scalars().all()
    return [replace(m, outbox_id=outbox_id) for m, outbox_id in zip(messages, ids, strict=True)]


async def owed_messages(conn: AsyncConnection, job_ids: Sequence[str]) -> list[Outgoing]:
    """What earlier commits of these jobs still owe the stream, oldest first. Read under the jobs' locks:
    sent before this transaction's own messages, so a job's events reach the stream in version order
    even when another transaction's send is still under way (the copy is dropped as a duplicate)."""
    rows = await conn.execute(_OWED, {"p_job_ids": list(job_ids)})
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
