"""`GET /v1/jobs/{id}/logs`: a job's output as plain text, from its `job.log` events in the real VTP_EVENTS
stream (the tests play the scheduler): every attempt's lines in order, `tail`, a stream of its own,
`follow` until the job ends, and nothing of another project's job."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from contracts.jobs import EventType, JobState
from tests.api.conftest import IDLE_POOL, Project, Scheduler


def output(*lines: tuple[str, str]) -> dict[str, Any]:
    """A `job.log` payload of captured output, as the scheduler makes it from a runner's batch."""
    return {
        "level": "info",
        "message": f"trainer output: {len(lines)} lines",
        "lines": [{"stream": stream, "text": text} for stream, text in lines],
    }


async def logs(project: Project, job_id: str, **params: Any) -> httpx.Response:
    return await project.client.get(f"/v1/jobs/{job_id}/logs", params=params)


async def two_attempts(events: Scheduler) -> None:
    await events.start()
    await events.emit(
        EventType.LOG, JobState.RUNNING, **output(("stdout", "epoch 1/2"), ("stderr", "warning: slow"))
    )
    await events.emit(EventType.PROGRESS, JobState.RUNNING, epoch=1, epochs=2, metrics={"loss": 0.5})
    await events.emit(EventType.RETRYING, JobState.QUEUED, reason="lost heartbeat", next_attempt=2)
    events.attempt = 2
    await events.emit(EventType.QUEUED, JobState.QUEUED, pool=IDLE_POOL)
    await events.emit(EventType.RUNNING, JobState.RUNNING)
    await events.emit(EventType.LOG, JobState.RUNNING, level="info", message="resumed from epoch 1")
    await events.emit(
        EventType.LOG,
        JobState.RUNNING,
        **output(
            ("stdout", "epoch 2/2"),
            ("runner", "3 lines of output dropped (more than 500 lines a second)"),
            ("stderr", "Traceback (most recent call last):"),
            ("stderr", "ValueError: boom"),
        ),
    )


ALL = [
    "epoch 1/2",
    "warning: slow",
    "[vtp] attempt 2",
    "[info] resumed from epoch 1",
    "epoch 2/2",
    "[vtp] 3 lines of output dropped (more than 500 lines a second)",
    "Traceback (most recent call last):",
    "ValueError: boom",
]


async def test_the_logs_are_every_attempts_output_in_order(project: Project, submit, scheduler) -> None:
    job = await submit()
    await two_attempts(scheduler(job))
    response = await logs(project, job["id"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text.splitlines() == ALL

    tail = await logs(project, job["id"], tail=3)
    assert tail.text.splitlines() == ALL[-3:]
    stderr = await logs(project, job["id"], stream="stderr")
    assert stderr.text.splitlines() == [
        "warning: slow",
        "Traceback (most recent call last):",
        "ValueError: boom",
    ]
    assert (await logs(project, job["id"], tail=0)).text == ""


async def test_follow_streams_new_lines_and_ends_with_the_job(project: Project, submit, scheduler) -> None:
    job = await submit()
    events = scheduler(job)
    await events.start()
    await events.emit(EventType.LOG, JobState.RUNNING, **output(("stdout", "before")))
    path = f"/v1/jobs/{job['id']}/logs"
    timeout = httpx.Timeout(10, read=5)
    params = {"follow": "true"}
    async with project.client.stream("GET", path, params=params, timeout=timeout) as response:
        assert response.status_code == 200
        lines = response.aiter_lines()
        assert await anext(lines) == "before"
        await events.emit(
            EventType.LOG, JobState.RUNNING, **output(("stdout", "live 1"), ("stderr", "live 2"))
        )
        assert [await anext(lines), await anext(lines)] == ["live 1", "live 2"]
        await events.emit(EventType.SUCCEEDED, JobState.SUCCEEDED, metrics={})
        # The server ends the stream once the job has ended.
        rest = await asyncio.wait_for(_rest(lines), 5)
    assert rest == []
    # A job that has ended: following it is reading it.
    async with project.client.stream("GET", path, params={"follow": "true", "tail": 1}) as ended:
        assert await asyncio.wait_for(_rest(ended.aiter_lines()), 5) == ["live 2"]


async def _rest(lines: Any) -> list[str]:
    return [line async for line in lines]


async def test_a_job_without_output_has_empty_logs(project: Project, submit) -> None:
    job = await submit()
    response = await logs(project, job["id"])
    assert (response.status_code, response.text) == (200, "")


async def test_another_projects_job_has_no_logs_here(
    project: Project, other_project: Project, submit
) -> None:
    job = await submit()
    for params in ({}, {"follow": "true"}, {"tail": 5}):
        response = await logs(other_project, job["id"], **params)
        assert response.status_code == 404, params
        assert response.json()["error"] == "not_found"
    assert (await logs(project, "no-such-job")).status_code == 404


async def test_bad_parameters_are_422(project: Project, submit) -> None:
    job = await submit()
    assert (await logs(project, job["id"], tail=-1)).status_code == 422
    assert (await logs(project, job["id"], stream="stdin")).status_code == 422
    unauthenticated = await project.client.get(
        f"/v1/jobs/{job['id']}/logs", headers={"Authorization": "Bearer nope"}
    )
    assert unauthenticated.status_code == 401
