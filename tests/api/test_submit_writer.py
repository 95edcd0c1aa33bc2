"""The group-committing submit writer, against the real Postgres and nats-server: concurrent submits share
transactions, and a submit whose command the bus refuses leaves nothing behind while its batch-mates land."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.js import JetStreamContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import subjects
from contracts.commands import SubmitJob
from services.api.errors import Unavailable
from services.api.messaging import NatsCommandPublisher
from services.api.models import Job
from services.api.submits import SubmitWriter
from services.common.db import make_engine

from .conftest import ApiServer, Project

pytestmark = pytest.mark.usefixtures("api_server")  # its start migrated the database


class RefusingPublisher(NatsCommandPublisher):
    """The real publisher, except that the bus "refuses" the commands of chosen jobs; records each batch."""

    def __init__(self, js: JetStreamContext, refuse: set[str]) -> None:
        super().__init__(js)
        self.refuse = refuse
        self.batches: list[int] = []

    async def submit_many(self, commands: Sequence[SubmitJob]) -> list[Unavailable | None]:
        self.batches.append(len(commands))
        kept = [command for command in commands if command.job_id not in self.refuse]
        published = iter(await super().submit_many(kept))
        return [
            Unavailable("refused by the test") if c.job_id in self.refuse else next(published)
            for c in commands
        ]


@pytest.fixture
async def engine(api_server: ApiServer) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(api_server.settings.database_url, pool_size=8, max_overflow=0, pre_ping=False)
    yield engine
    await engine.dispose()


def submit_of(project_id: str, idempotency_key: str | None = None) -> tuple[dict[str, Any], SubmitJob]:
    now = datetime.now(UTC)
    job_id, trace_id = uuid.uuid4().hex, uuid.uuid4().hex
    command = SubmitJob.model_validate(
        {
            "job_id": job_id,
            "project_id": project_id,
            "spec": {"framework": "timm", "task": "classify", "model": "resnet18"},
            "dataset": {"id": "d0", "format": "imagefolder", "storage_key": "datasets/d0/d.zip"},
            "pool": "api-tests-idle",
            "max_attempts": 1,
            "trace_id": trace_id,
            "submitted_at": now,
        }
    )
    row = {
        "id": job_id, "project_id": project_id, "name": None, "state": "PENDING", "attempt": 0,
        "max_attempts": 1, "version": 0, "framework": "timm", "task": "classify", "model": "resnet18",
        "hyperparameters": command.spec.model_dump(mode="json")["hyperparameters"], "dataset_id": "d0",
        "pool": "api-tests-idle", "trace_id": trace_id, "created_at": now, "updated_at": now,
        "idempotency_key": idempotency_key,
    }  # fmt: skip
    return row, command


async def stored_ids(engine: AsyncEngine, project_id: str) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(select(Job.id).where(Job.project_id == project_id))).scalars())


async def test_concurrent_submits_share_transactions_and_a_refused_one_leaves_nothing(
    engine: AsyncEngine, js: JetStreamContext, project: Project
) -> None:
    submits = [submit_of(project.id) for _ in range(60)]
    refused = {submits[7][0]["id"], submits[42][0]["id"]}
    publisher = RefusingPublisher(js, refused)
    writer = SubmitWriter(engine, publisher)
    writer.start()
    try:
        outcomes = await asyncio.gather(
            *(writer.submit(row, command) for row, command in submits), return_exceptions=True
        )
    finally:
        await writer.stop()

    by_id = {row["id"]: outcome for (row, _), outcome in zip(submits, outcomes, strict=True)}
    assert all(isinstance(by_id[job_id], Unavailable) for job_id in refused)
    assert all(outcome is True for job_id, outcome in by_id.items() if job_id not in refused)
    assert len(publisher.batches) < len(submits)  # grouped, not one transaction per submit
    assert await stored_ids(engine, project.id) == set(by_id) - refused
    # The accepted commands really are on the stream (the last one published is one of them).
    last = await js.get_last_msg(subjects.COMMANDS_STREAM, subjects.SUBMIT_JOB)
    assert json.loads(last.data)["job_id"] in set(by_id) - refused


async def test_the_same_idempotency_key_twice_in_one_batch_creates_one_job(
    engine: AsyncEngine, js: JetStreamContext, project: Project
) -> None:
    first, second = submit_of(project.id, "retry-1"), submit_of(project.id, "retry-1")
    writer = SubmitWriter(engine, NatsCommandPublisher(js))
    writer.start()
    try:
        outcomes = await asyncio.gather(writer.submit(*first), writer.submit(*second))
    finally:
        await writer.stop()
    assert sorted(outcomes) == [False, True]
    assert len(await stored_ids(engine, project.id)) == 1
