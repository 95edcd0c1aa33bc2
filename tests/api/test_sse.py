from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from contracts.jobs import EventType, JobState

from .conftest import Project
from .sse_client import SseReader

TYPES_TO_SUCCESS = ["job.submitted", "job.queued", "job.running", "job.progress", "job.succeeded"]


def stream(client: httpx.AsyncClient, path: str, **headers: str) -> Any:
    return client.stream("GET", path, headers=headers, timeout=httpx.Timeout(10, read=5))


async def test_late_client_gets_history_then_live_and_stream_ends(
    project: Project, submit, scheduler
) -> None:
    job = await submit()
    events = scheduler(job)
    history = await events.start()
    async with stream(project.client, f"/v1/jobs/{job['id']}/events") as response:
        reader = SseReader(response)
        first = await reader.take(3)
        assert [e.id for e in first] == history
        assert [e.event for e in first] == TYPES_TO_SUCCESS[:3]
        live = [
            await events.emit(EventType.PROGRESS, JobState.RUNNING, epoch=1, epochs=1, metrics={"loss": 0.5}),
            await events.emit(EventType.SUCCEEDED, JobState.SUCCEEDED, metrics={"val_accuracy": 1.0}),
        ]
        rest = await reader.rest()  # returns only because the server ends the stream after the terminal event
        # The terminal event was held until the read model applied it: reading the job now shows it.
        shown = (await project.client.get(f"/v1/jobs/{job['id']}")).json()
        assert (shown["state"], shown["final_metrics"]) == ("SUCCEEDED", {"val_accuracy": 1.0})
    assert [e.id for e in rest] == live
    received = first + rest
    assert [e.event for e in received] == TYPES_TO_SUCCESS
    data = received[3].data
    assert {"job_id", "type", "state", "attempt", "time", "trace_id", "version", "payload"} <= set(data)
    assert (data["job_id"], data["type"], data["state"], data["version"]) == (
        job["id"],
        "job.progress",
        "RUNNING",
        4,
    )
    assert data["trace_id"] == job["trace_id"]
    assert data["payload"]["metrics"] == {"loss": 0.5}


async def test_resume_with_last_event_id_gives_exactly_the_events_after_it(
    project: Project, submit, scheduler
) -> None:
    job = await submit()
    events = scheduler(job)
    seqs = await events.start()
    path = f"/v1/jobs/{job['id']}/events"

    # Disconnect after the first event, then resume from it: events 2 and 3 from history, then live.
    async with stream(project.client, path) as response:
        seen = await SseReader(response).take(1)
    async with stream(project.client, path, **{"Last-Event-ID": str(seen[0].id)}) as response:
        reader = SseReader(response)
        resumed = await reader.take(2)
        assert [e.id for e in resumed] == seqs[1:]
        seqs.append(await events.emit(EventType.SUCCEEDED, JobState.SUCCEEDED))
        resumed += await reader.rest()
    assert [e.id for e in resumed] == seqs[1:]
    assert [e.data["version"] for e in resumed] == [2, 3, 4]

    # The query parameter works the same way (EventSource cannot set headers on the first request).
    async with stream(project.client, f"{path}?last_event_id={seqs[2]}") as response:
        assert [e.id for e in await SseReader(response).rest()] == seqs[3:]
    # Resuming after the terminal event: nothing more, and the stream ends at once.
    async with stream(project.client, path, **{"Last-Event-ID": str(seqs[3])}) as response:
        assert await SseReader(response).rest() == []
    bad = await project.client.get(path, headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422


async def test_no_gap_no_duplicate_while_events_flow_during_connect(
    project: Project, submit, scheduler
) -> None:
    """History and the live feed overlap while the client connects; it sees every event exactly once."""
    job = await submit()
    events = scheduler(job)
    await events.emit(EventType.SUBMITTED, JobState.PENDING)
    await events.emit(EventType.QUEUED, JobState.QUEUED)
    await events.emit(EventType.RUNNING, JobState.RUNNING)

    async def publish() -> list[int]:
        published = []
        for epoch in range(1, 61):
            published.append(
                await events.emit(EventType.PROGRESS, JobState.RUNNING, epoch=epoch, epochs=60, metrics={})
            )
            if epoch % 10 == 0:
                await asyncio.sleep(0.005)
        published.append(await events.emit(EventType.SUCCEEDED, JobState.SUCCEEDED))
        return published

    async def read() -> list[int]:
        async with stream(project.client, f"/v1/jobs/{job['id']}/events") as response:
            return [e.id for e in await SseReader(response).rest()]

    readers = [asyncio.create_task(read()) for _ in range(5)]
    await asyncio.sleep(0.01)
    publisher = asyncio.create_task(publish())
    results = await asyncio.gather(*readers)
    await publisher
    for received in results:
        assert len(received) == 64
        assert received == sorted(set(received))


async def test_project_stream_only_carries_the_callers_jobs(
    project: Project, other_project: Project, submit, scheduler
) -> None:
    mine = await submit()
    theirs = {"id": "f" * 32, "trace_id": "e" * 32, "name": None}
    async with stream(project.client, "/v1/events") as response:
        reader = SseReader(response)
        await reader.ready()
        foreign = scheduler(theirs)
        foreign.project_id = other_project.id
        await foreign.emit(EventType.SUBMITTED, JobState.PENDING)
        own = await scheduler(mine).emit(EventType.SUBMITTED, JobState.PENDING)
        received = await reader.take(1)
    assert [(e.id, e.data["job_id"]) for e in received] == [(own, mine["id"])]

    # Resuming the project stream replays the project's stored events after the given id.
    async with stream(project.client, "/v1/events", **{"Last-Event-ID": str(own - 2)}) as response:
        replayed = await SseReader(response).take(1)
    assert [e.id for e in replayed] == [own]


async def test_idle_stream_sends_keepalive_comments(project: Project, submit) -> None:
    job = await submit()
    async with stream(project.client, f"/v1/jobs/{job['id']}/events") as response:
        lines = response.aiter_lines()
        assert await anext(lines) == "retry: 2000"
        while (line := await anext(lines)) == "":
            pass
        assert line == ": keep-alive"


async def test_open_streams_hold_no_database_connections(project: Project, submit) -> None:
    """More open SSE streams than the connection pool has connections, and the API still answers."""
    job = await submit()
    async with contextlib.AsyncExitStack() as streams:
        for _ in range(24):
            response = await streams.enter_async_context(
                stream(project.client, f"/v1/jobs/{job['id']}/events")
            )
            await SseReader(response).ready()
        listed = await asyncio.wait_for(project.client.get("/v1/jobs"), 5)
        assert listed.status_code == 200
