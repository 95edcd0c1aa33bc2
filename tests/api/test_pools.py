"""Pools are known: a job may name only a declared pool (its dispatch consumer exists), and `GET /v1/pools`
lists them with their load, against the real api, nats-server and Postgres."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from nats.js import JetStreamContext

from contracts.jobs import EventType, JobState
from messaging.nats import ensure_pool_consumer
from services.api.errors import InvalidField
from services.api.pools import PoolDirectory
from tests.api.conftest import IDLE_POOL, Project, Scheduler, eventually, job_body, job_reaches


async def test_a_job_to_a_pool_nobody_declared_is_refused_naming_the_known_ones(
    project: Project, dataset: str
) -> None:
    response = await project.client.post("/v1/jobs", json=job_body(dataset, pool="gpu-a1oo"))
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "pool"]
    assert "'gpu-a1oo' is not declared" in problem["msg"]
    assert IDLE_POOL in problem["msg"]
    assert "local" in problem["msg"]
    jobs = (await project.client.get("/v1/jobs")).json()["items"]
    assert all(job["pool"] != "gpu-a1oo" for job in jobs), "nothing of the refused job is kept"


async def test_a_pool_declared_a_moment_ago_is_known_at_once(
    project: Project, dataset: str, js: JetStreamContext
) -> None:
    pool = f"fresh-{uuid.uuid4().hex[:8]}"
    refused = await project.client.post("/v1/jobs", json=job_body(dataset, pool=pool))
    assert refused.status_code == 422
    await ensure_pool_consumer(js, pool)  # `vtp pools prepare` does this
    accepted = await project.client.post("/v1/jobs", json=job_body(dataset, pool=pool))
    assert accepted.status_code == 202, accepted.text


async def test_the_pools_list_shows_each_pools_load(
    project: Project,
    dataset: str,
    js: JetStreamContext,
    scheduler: Callable[[dict[str, Any]], Scheduler],
    submit: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    pool = f"load-{uuid.uuid4().hex[:8]}"
    await ensure_pool_consumer(js, pool)
    waiting, running = await submit(pool=pool), await submit(pool=pool)
    for job, states in ((waiting, 2), (running, 3)):
        events = scheduler(job)
        await events.emit(EventType.SUBMITTED, JobState.PENDING, pool=pool)
        await events.emit(EventType.QUEUED, JobState.QUEUED, pool=pool)
        if states == 3:
            await events.emit(EventType.RUNNING, JobState.RUNNING)
    await job_reaches(project.client, running["id"], state="RUNNING")
    await job_reaches(project.client, waiting["id"], state="QUEUED")

    listed: dict[str, Any] = {}

    async def shows_the_load() -> bool:
        nonlocal listed
        response = await project.client.get("/v1/pools")
        assert response.status_code == 200, response.text
        listed = {item["name"]: item for item in response.json()["items"]}
        return listed.get(pool, {}).get("waiting") == 1

    await eventually(shows_the_load)
    mine = listed[pool]
    assert (mine["waiting"], mine["running"], mine["runners_waiting"]) == (1, 1, 0)
    assert mine["oldest_waiting_seconds"] >= 0
    assert {IDLE_POOL, "local"} <= set(listed)


async def test_the_pools_list_needs_a_key(project: Project) -> None:
    response = await project.client.get("/v1/pools", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


async def test_submits_that_find_the_names_stale_share_one_read(
    project: Project, js: JetStreamContext
) -> None:
    """A burst meeting stale names (every few seconds) asks JetStream once, not once per submit."""
    directory = PoolDirectory(js)
    reads = 0
    real_read = js.consumers_info

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real_read(*args, **kwargs)

    js.consumers_info = counted  # type: ignore[method-assign]
    try:
        await asyncio.gather(*(directory.require(IDLE_POOL) for _ in range(20)))
        assert reads == 1
        await directory.require(IDLE_POOL)  # fresh now: no read at all
        assert reads == 1
        refused = await asyncio.gather(
            *(directory.require("no-such-pool") for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(problem, InvalidField) for problem in refused)
        assert reads == 2
    finally:
        del js.consumers_info
