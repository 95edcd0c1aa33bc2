"""Why a QUEUED job waits, and where: its place in its pool's queue (`queue_position`, 1 = the next one a
runner takes) and a reason in words (`pending_reason`). Any other job has neither.

Neither is stored, and a submit does nothing for them: they are worked out when a job is shown, from the
read model (the job's `queued_at` and `retry_at`, which job.queued and job.retrying set; the jobs of its
pool, of every project, QUEUED before it and RUNNING: one indexed statement per request, see
`repository.queue_places`) and the pool's dispatch consumer in NATS (runners waiting for a job, dispatches
held: `PoolDirectory`, one request). Runners take a pool's dispatches in the order the scheduler queued
them, so the order of entering QUEUED is the queue's order (a job a runner has taken stays QUEUED until the
runner's first heartbeat, a moment later).

`pending` is the decision, pure; `pending_of` gathers what it needs for jobs being shown, `sample` for a
job's SSE stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.jobs import JobState
from services.api import repository
from services.api.errors import Unavailable
from services.api.pools import DeclaredPool, PoolDirectory
from services.api.repository import QueuePlace

# How much of the last attempt's failure a backoff's reason repeats (all of it is in `reason`).
FAILURE_CHARS = 160


class Kind(StrEnum):
    """What a job waits for. A job's SSE stream says `job.pending` when this changes (or a new backoff
    begins), not when the queue merely moves."""

    BACKOFF = "backoff"
    REQUEUEING = "requeueing"
    UNDECLARED = "undeclared"
    NO_RUNNER = "no-runner"
    NEXT = "next"
    BEHIND = "behind"
    # The pool's runners could not be read (NATS unavailable), or the job's place is not known.
    QUEUED = "queued"


@dataclass(frozen=True, slots=True)
class Pending:
    kind: Kind
    reason: str
    position: int | None = None
    retry_at: datetime | None = None

    @property
    def key(self) -> tuple[Kind, datetime | None]:
        """What a change of reason is: the kind, or another backoff; not the position."""
        return self.kind, self.retry_at


class Waiting(Protocol):
    """The columns of a job (a `Job`) the reason is made of."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def pool(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def queued_at(self) -> datetime | None: ...
    @property
    def retry_at(self) -> datetime | None: ...


def pending(
    job: Waiting,
    place: QueuePlace | None,
    pools: Mapping[str, DeclaredPool] | None,
    now: datetime,
) -> Pending | None:
    """Why `job` waits; None unless it is QUEUED.

    `place`: its place in its pool's queue (None: not in it, or not known). `pools`: the declared pools by
    name, None when they could not be read (the reason then says less).
    """
    if job.state != JobState.QUEUED.value:
        return None
    attempts = f"attempt {job.attempt} of {job.max_attempts}"
    if job.retry_at is not None:
        if now < job.retry_at:
            text = f"retrying after backoff until {_clock(job.retry_at)} ({attempts})"
            return Pending(Kind.BACKOFF, text + _failure(job), retry_at=job.retry_at)
        text = f"backoff ended at {_clock(job.retry_at)}; queueing it again ({attempts})"
        return Pending(Kind.REQUEUEING, text, retry_at=job.retry_at)
    name = job.pool
    if place is None:
        return Pending(Kind.QUEUED, f"queued on pool {name}")
    position, ahead, running = place.position, place.position - 1, place.running
    declared = pools.get(name) if pools is not None else None
    if pools is not None and declared is None:
        text = (
            f"waiting for a runner: pool {name} is not declared, so none will come "
            f"(`vtp pools prepare {name}` declares it)"
        )
        return Pending(Kind.UNDECLARED, text, position)
    if declared is None:
        return Pending(Kind.QUEUED, f"{_ahead(ahead)} on pool {name} ({running} running)", position)
    if not (declared.runners_waiting or declared.dispatches_held or running):
        text = (
            f"waiting for a runner: pool {name} has none (scaled to zero; its autoscaler, KEDA or the local "
            "pool, starts one within its polling interval)"
        )
        if ahead:
            text += f"; {_ahead(ahead)}"
        return Pending(Kind.NO_RUNNER, text, position)
    # A job a runner has taken stays QUEUED until the runner's first heartbeat (a moment): it is "next".
    # Dispatches held cannot tell it apart, as they include those of jobs just ended, not acked yet.
    if ahead == 0:
        if declared.runners_waiting:
            return Pending(Kind.NEXT, f"next on pool {name}; a free runner takes it now", position)
        return Pending(Kind.NEXT, f"next on pool {name} ({running} running)", position)
    return Pending(Kind.BEHIND, f"{_ahead(ahead)} on pool {name} ({running} running)", position)


def _ahead(count: int) -> str:
    return f"{count} job{'' if count == 1 else 's'} ahead of it"


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S UTC")


def _failure(job: Waiting) -> str:
    if not job.reason:
        return ""
    line = job.reason.strip().splitlines()[0] if job.reason.strip() else ""
    if len(line) > FAILURE_CHARS:
        line = line[: FAILURE_CHARS - 1] + "…"
    return f"; attempt {job.attempt - 1} failed: {line}" if line else ""


async def pending_of(
    conn: AsyncConnection, directory: PoolDirectory, jobs: Sequence[Waiting], now: datetime
) -> dict[str, Pending]:
    """Why each QUEUED job of `jobs` waits, by id: nothing is asked of the database or NATS unless one is
    QUEUED; then one statement and one NATS request, whatever the number of jobs."""
    queued = [job for job in jobs if job.state == JobState.QUEUED.value]
    if not queued:
        return {}
    in_queue = [(job.id, job.pool, job.queued_at) for job in queued if job.queued_at and not job.retry_at]
    places = await repository.queue_places(conn, in_queue)
    pools = await declared_pools(directory) if in_queue else None
    found = {job.id: pending(job, places.get(job.id), pools, now) for job in queued}
    return {job_id: reason for job_id, reason in found.items() if reason is not None}


async def declared_pools(directory: PoolDirectory) -> dict[str, DeclaredPool] | None:
    """The declared pools by name; None when NATS cannot tell now (a job is still shown, with less said)."""
    try:
        return {pool.name: pool for pool in await directory.declared()}
    except Unavailable:
        return None


@dataclass(frozen=True, slots=True)
class Sample:
    """A job's state, attempt and why it waits (None unless QUEUED), read at one moment."""

    state: str
    attempt: int
    pending: Pending | None


async def sample(engine: AsyncEngine, directory: PoolDirectory, job_id: str, now: datetime) -> Sample | None:
    """The job as it stands now, on a connection of its own (an SSE stream holds none between reads); None
    when the database or NATS cannot tell now."""
    try:
        async with engine.connect() as conn:
            job = await repository.waiting_job(conn, job_id)
            if job is None:
                return None
            if job.state != JobState.QUEUED.value or job.retry_at is not None or job.queued_at is None:
                return Sample(job.state, job.attempt, pending(job, None, None, now))
            places = await repository.queue_places(conn, [(job.id, job.pool, job.queued_at)])
    except (SQLAlchemyError, OSError):
        return None
    pools = await declared_pools(directory)
    if pools is None:
        return None
    return Sample(job.state, job.attempt, pending(job, places.get(job.id), pools, now))
