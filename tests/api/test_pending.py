"""Every waiting job says why and where: `queue_position` and `pending_reason` of QUEUED jobs in `GET
/v1/jobs/{id}`, the job list, the job's SSE stream (`?pending=true`: `job.pending`) and `vtp jobs show` /
`jobs watch`, against the real api, nats-server and Postgres. The tests play the scheduler (its events) and a
pool's runner (a pull request waiting on the pool's dispatch consumer, as a runner's is)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from contracts import subjects
from contracts.jobs import EventType, JobState
from messaging.nats import ensure_pool_consumer
from services.api.pending import Kind, pending
from services.api.pools import DeclaredPool
from services.api.repository import QueuePlace
from tests.api.conftest import ApiServer, Project, Scheduler, eventually, job_reaches
from vtp import cli

NO_RUNNER = (
    "has none (scaled to zero; its autoscaler, KEDA or the local pool, starts one within its polling "
    "interval)"
)


async def new_pool(js: JetStreamContext) -> str:
    pool = f"pending-{uuid.uuid4().hex[:8]}"
    await ensure_pool_consumer(js, pool)  # declared, as `vtp pools prepare` does; no runner serves it
    return pool


class Jobs:
    """Jobs of one project on one pool, their events published as the scheduler would."""

    def __init__(self, js: JetStreamContext, project_id: str, pool: str) -> None:
        self.js, self.project_id, self.pool = js, project_id, pool
        self.schedulers: dict[str, Scheduler] = {}

    async def queue(self, name: str) -> str:
        """A job submitted and queued on the pool (its row made from its events)."""
        job = {"id": uuid.uuid4().hex, "trace_id": uuid.uuid4().hex, "name": name}
        events = Scheduler(self.js, job, self.project_id)
        self.schedulers[job["id"]] = events
        await events.emit(EventType.SUBMITTED, JobState.PENDING, name=name, pool=self.pool, max_attempts=3)
        await events.emit(EventType.QUEUED, JobState.QUEUED, pool=self.pool)
        return str(job["id"])

    async def run(self, job_id: str) -> None:
        await self.schedulers[job_id].emit(EventType.RUNNING, JobState.RUNNING)

    async def cancel(self, job_id: str) -> None:
        await self.schedulers[job_id].emit(EventType.CANCELLED, JobState.CANCELLED, reason="test")

    async def succeed(self, job_id: str) -> None:
        await self.schedulers[job_id].emit(EventType.SUCCEEDED, JobState.SUCCEEDED, metrics={})


@contextlib.asynccontextmanager
async def runner_waiting(js: JetStreamContext, pool: str) -> AsyncIterator[None]:
    """A runner of the pool waiting for a job: its pull request open on the pool's consumer."""
    subscription = await js.pull_subscribe_bind(subjects.pool_consumer(pool), stream=subjects.DISPATCH_STREAM)
    fetch = asyncio.create_task(subscription.fetch(1, timeout=60))
    try:
        yield
    finally:
        fetch.cancel()
        with contextlib.suppress(BaseException):
            await fetch
        await subscription.unsubscribe()


async def places(client: httpx.AsyncClient, *job_ids: str) -> list[tuple[Any, Any]]:
    shown = [(await client.get(f"/v1/jobs/{job_id}")).json() for job_id in job_ids]
    return [(job["queue_position"], job["pending_reason"]) for job in shown]


async def until_places(client: httpx.AsyncClient, expected: dict[str, tuple[Any, Any]]) -> None:
    seen: list[tuple[Any, Any]] = []

    async def check() -> bool:
        nonlocal seen
        seen = await places(client, *expected)
        return seen == list(expected.values())

    try:
        await eventually(check)
    except AssertionError:
        raise AssertionError(f"expected {list(expected.values())}, last seen {seen}") from None


async def test_positions_move_as_the_jobs_ahead_finish_or_are_cancelled(
    project: Project, other_project: Project, js: JetStreamContext
) -> None:
    pool = await new_pool(js)
    mine, theirs = Jobs(js, project.id, pool), Jobs(js, other_project.id, pool)
    running = await mine.queue("running")
    await mine.run(running)
    first = await mine.queue("first")
    other = await theirs.queue("another project's")  # a pool's queue is shared by every project
    second = await mine.queue("second")
    third = await mine.queue("third")
    await job_reaches(project.client, third, state="QUEUED")
    await job_reaches(project.client, running, state="RUNNING")

    await until_places(
        project.client,
        {
            running: (None, None),
            first: (1, f"next on pool {pool} (1 running)"),
            second: (3, f"2 jobs ahead of it on pool {pool} (1 running)"),
            third: (4, f"3 jobs ahead of it on pool {pool} (1 running)"),
        },
    )
    # The list says the same, with one statement for the page.
    listed = (await project.client.get("/v1/jobs", params={"state": "QUEUED"})).json()["items"]
    assert {job["id"]: job["queue_position"] for job in listed} == {first: 1, second: 3, third: 4}
    everything = (await project.client.get("/v1/jobs")).json()["items"]
    assert [(job["queue_position"], job["pending_reason"]) for job in everything if job["id"] == running] == [
        (None, None)
    ]

    await mine.cancel(first)
    await until_places(
        project.client,
        {
            first: (None, None),
            second: (2, f"1 job ahead of it on pool {pool} (1 running)"),
            third: (3, f"2 jobs ahead of it on pool {pool} (1 running)"),
        },
    )
    await theirs.run(other)
    await mine.succeed(running)
    await until_places(
        project.client,
        {
            second: (1, f"next on pool {pool} (1 running)"),
            third: (2, f"1 job ahead of it on pool {pool} (1 running)"),
        },
    )


async def test_a_pool_scaled_to_zero_says_it_waits_for_a_runner_until_one_comes(
    project: Project, js: JetStreamContext
) -> None:
    pool = await new_pool(js)
    jobs = Jobs(js, project.id, pool)
    first, second = await jobs.queue("first"), await jobs.queue("second")
    await job_reaches(project.client, second, state="QUEUED")
    await until_places(
        project.client,
        {
            first: (1, f"waiting for a runner: pool {pool} {NO_RUNNER}"),
            second: (2, f"waiting for a runner: pool {pool} {NO_RUNNER}; 1 job ahead of it"),
        },
    )
    async with runner_waiting(js, pool):
        await until_places(
            project.client,
            {
                first: (1, f"next on pool {pool}; a free runner takes it now"),
                second: (2, f"1 job ahead of it on pool {pool} (0 running)"),
            },
        )


async def test_a_retry_in_backoff_says_until_when_and_holds_no_place(
    project: Project, js: JetStreamContext
) -> None:
    pool = await new_pool(js)
    jobs = Jobs(js, project.id, pool)
    retried = await jobs.queue("retried")
    await jobs.run(retried)
    later = await jobs.queue("queued while it ran")
    events = jobs.schedulers[retried]
    events.attempt = 2
    retry_at = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    await events.emit(
        EventType.RETRYING,
        JobState.QUEUED,
        reason="trainer exited with code 1\nTraceback ...",
        retry_at=retry_at.isoformat(),
        next_attempt=2,
    )
    await job_reaches(project.client, retried, state="QUEUED", attempt=2)
    clock = retry_at.strftime("%H:%M:%S")
    backoff = (
        f"retrying after backoff until {clock} UTC (attempt 2 of 3); "
        "attempt 1 failed: trainer exited with code 1"
    )
    # In backoff it is in no queue: the job queued after it is next.
    await until_places(
        project.client,
        {retried: (None, backoff), later: (1, f"waiting for a runner: pool {pool} {NO_RUNNER}")},
    )
    await events.emit(EventType.QUEUED, JobState.QUEUED, pool=pool)  # the backoff's end, on the tick
    await until_places(
        project.client,
        {
            later: (1, f"waiting for a runner: pool {pool} {NO_RUNNER}"),
            retried: (2, f"waiting for a runner: pool {pool} {NO_RUNNER}; 1 job ahead of it"),
        },
    )


# SSE


@dataclass
class Frame:
    id: int | None
    event: str
    data: dict[str, Any]


class Frames:
    """A job's event stream, `job.pending` (no `id:`) included."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.status_code
        self._lines = response.aiter_lines()

    async def next(self, within: float = 10.0) -> Frame:
        frame = await asyncio.wait_for(self._next(), within)
        assert frame is not None, "the stream ended"
        return frame

    async def rest(self) -> list[Frame]:
        """Every frame until the server ends the stream."""
        frames = []
        while (frame := await asyncio.wait_for(self._next(), 10.0)) is not None:
            frames.append(frame)
        return frames

    async def _next(self) -> Frame | None:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line == "":
                if "data" in fields:
                    seq = int(fields["id"]) if "id" in fields else None
                    return Frame(seq, fields["event"], json.loads(fields["data"]))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        return None


def stream(client: httpx.AsyncClient, job_id: str, pending: bool = True, **headers: str) -> Any:
    path = f"/v1/jobs/{job_id}/events" + ("?pending=true" if pending else "")
    return client.stream("GET", path, headers=headers, timeout=httpx.Timeout(10, read=15))


async def test_the_job_stream_says_when_the_reason_changes_not_when_the_queue_moves(
    project: Project, js: JetStreamContext
) -> None:
    pool = await new_pool(js)
    jobs = Jobs(js, project.id, pool)
    ahead = [await jobs.queue("ahead 1"), await jobs.queue("ahead 2")]
    job = await jobs.queue("mine")
    await job_reaches(project.client, job, state="QUEUED")

    async with stream(project.client, job) as response:
        frames = Frames(response)
        submitted, queued = await frames.next(), await frames.next()
        assert (submitted.event, queued.event) == ("job.submitted", "job.queued")
        said = await frames.next()
        assert (said.id, said.event) == (None, "job.pending"), "not a stored event: no id"
        assert (said.data["queue_position"], said.data["pending_reason"]) == (
            3,
            f"waiting for a runner: pool {pool} {NO_RUNNER}; 2 jobs ahead of it",
        )
        assert (said.data["job_id"], said.data["state"], said.data["attempt"]) == (job, "QUEUED", 1)

    # Resuming after the last stored event gives the stored events after it (none), then the reason again.
    async with stream(project.client, job, **{"Last-Event-ID": str(queued.id)}) as response:
        frames = Frames(response)
        again = await frames.next()
        assert (again.id, again.event) == (None, "job.pending")

        async with runner_waiting(js, pool):
            changed = await frames.next()
            assert changed.event == "job.pending"
            assert (changed.data["queue_position"], changed.data["pending_reason"]) == (
                3,
                f"2 jobs ahead of it on pool {pool} (0 running)",
            )
            # The queue moves; the reason (jobs ahead of it) stays: nothing is said.
            await jobs.cancel(ahead[0])
            await until_places(project.client, {job: (2, f"1 job ahead of it on pool {pool} (0 running)")})
            await asyncio.sleep(4.5)  # two rechecks
            await jobs.run(job)
            running = await frames.next()
            assert running.event == "job.running", running
            assert (running.id or 0) > (queued.id or 0)
            await jobs.succeed(job)
            assert [frame.event for frame in await frames.rest()] == ["job.succeeded"]

    # Without `?pending=true` the stream is the stored events alone.
    async with stream(project.client, ahead[1], pending=False) as response:
        frames = Frames(response)
        events = [await frames.next(), await frames.next()]
        await jobs.cancel(ahead[1])
        events += await frames.rest()
    assert [frame.event for frame in events] == ["job.submitted", "job.queued", "job.cancelled"]


# CLI


async def test_vtp_jobs_show_and_watch_say_why_a_job_waits(
    project: Project,
    js: JetStreamContext,
    api_server: ApiServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VTP_API_URL", api_server.url)
    monkeypatch.setenv("VTP_API_KEY", project.key)
    pool = await new_pool(js)
    jobs = Jobs(js, project.id, pool)
    job = await jobs.queue("waits")
    await job_reaches(project.client, job, state="QUEUED")
    capsys.readouterr()

    assert await asyncio.to_thread(cli.main, ["jobs", "show", job]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["queue_position"] == 1
    assert shown["pending_reason"] == f"waiting for a runner: pool {pool} {NO_RUNNER}"

    watching = asyncio.create_task(asyncio.to_thread(cli.main, ["jobs", "watch", job]))
    printed = ""

    async def says_why() -> bool:
        nonlocal printed
        printed += capsys.readouterr().out
        return "job.pending" in printed

    await eventually(says_why, within=15)
    await jobs.cancel(job)
    assert await asyncio.wait_for(watching, 15) == 1
    printed += capsys.readouterr().out
    [line] = [line for line in printed.splitlines() if line.startswith("job.pending")]
    assert f"QUEUED  attempt 1  queue position 1  waiting for a runner: pool {pool} has none" in line
    cancelled = [line for line in printed.splitlines() if line.startswith("job.cancelled")]
    assert len(cancelled) == 1
    assert "waiting" not in cancelled[0]


# The decision alone


@dataclass
class Row:
    id: str = "j"
    state: str = "QUEUED"
    pool: str = "gpu-a100"
    attempt: int = 1
    max_attempts: int = 3
    reason: str | None = None
    queued_at: datetime | None = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    retry_at: datetime | None = None


NOW = datetime(2026, 12, 4, 12, 1, tzinfo=UTC)


def declared(**load: Any) -> dict[str, DeclaredPool]:
    values = {"runners_waiting": 0, "dispatches_held": 0, "last_taken_at": None, **load}
    return {"gpu-a100": DeclaredPool(name="gpu-a100", **values)}


@pytest.mark.parametrize(
    ("row", "place", "pools", "expected"),
    [
        (Row(state="RUNNING"), None, declared(), None),
        (Row(state="PENDING"), None, declared(), None),
        (
            Row(),
            QueuePlace(1, 0),
            declared(),
            (Kind.NO_RUNNER, 1, "waiting for a runner: pool gpu-a100 " + NO_RUNNER),
        ),
        (
            Row(),
            QueuePlace(3, 1),
            declared(dispatches_held=1),
            (Kind.BEHIND, 3, "2 jobs ahead of it on pool gpu-a100 (1 running)"),
        ),
        # Runners hold dispatches (running, or just taken, or just ended): the pool has runners.
        (
            Row(),
            QueuePlace(1, 0),
            declared(dispatches_held=1),
            (Kind.NEXT, 1, "next on pool gpu-a100 (0 running)"),
        ),
        (
            Row(),
            QueuePlace(1, 2),
            declared(runners_waiting=1, dispatches_held=2),
            (Kind.NEXT, 1, "next on pool gpu-a100; a free runner takes it now"),
        ),
        (
            Row(),
            QueuePlace(1, 0),
            {},
            (
                Kind.UNDECLARED,
                1,
                "waiting for a runner: pool gpu-a100 is not declared, so none will come "
                "(`vtp pools prepare gpu-a100` declares it)",
            ),
        ),
        # NATS could not be read: the place alone.
        (Row(), QueuePlace(2, 0), None, (Kind.QUEUED, 2, "1 job ahead of it on pool gpu-a100 (0 running)")),
        (
            Row(attempt=2, queued_at=None, retry_at=NOW + timedelta(seconds=70), reason="x" * 300),
            None,
            declared(),
            (
                Kind.BACKOFF,
                None,
                "retrying after backoff until 12:02:10 UTC (attempt 2 of 3); attempt 1 failed: "
                + "x" * 159
                + "…",
            ),
        ),
        (
            Row(attempt=2, queued_at=None, retry_at=NOW - timedelta(seconds=1)),
            None,
            declared(),
            (Kind.REQUEUEING, None, "backoff ended at 12:00:59 UTC; queueing it again (attempt 2 of 3)"),
        ),
    ],
)
def test_the_reason(
    row: Row,
    place: QueuePlace | None,
    pools: dict[str, DeclaredPool] | None,
    expected: tuple[Any, ...] | None,
) -> None:
    found = pending(row, place, pools, NOW)
    assert (None if found is None else (found.kind, found.position, found.reason)) == expected


def test_a_move_of_the_queue_is_no_change_of_reason() -> None:
    pools = declared(dispatches_held=1)
    first, second, third = (pending(Row(), QueuePlace(n, 1), pools, NOW) for n in (1, 2, 3))
    assert third is not None
    assert second is not None
    assert first is not None
    assert third.reason != second.reason
    assert third.key == second.key
    assert first.key != second.key, "next is news"
