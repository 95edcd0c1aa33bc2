"""An `Idempotency-Key` survives the api failing between the PubAck and the commit, on the real api,
nats-server and Postgres: the command is in the stream, the row is not, and the client's retry must not make
a second job (seen before: the read model re-created the row from `job.submitted` without the key, and the
retry made another).

No scheduler runs here: the tests feed the command they caught to the scheduler's own pure state machine and
publish the events it derives, as the scheduler would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from nats.js import JetStreamContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import subjects
from contracts.commands import SubmitJob
from contracts.jobs import EventType
from contracts.validation import VALIDATION_FRAMEWORK
from services.api.errors import Unavailable
from services.api.messaging import NatsCommandPublisher
from services.api.models import Job
from services.api.service import ids_for_idempotency_key
from services.common.db import make_engine
from services.scheduler.core.machine import decide
from services.scheduler.core.model import Policy

from .conftest import ApiServer, Project, eventually, job_body, job_reaches

POLICY = Policy()


@dataclass
class DiesAfterPubAck:
    """Makes the api's submit fail after JetStream stored its command and before its row commits (what an
    api SIGKILLed at that moment, or a commit that fails, leaves behind); records what was published."""

    key: str
    failing: bool = True
    published: list[SubmitJob] = field(default_factory=list)


@pytest.fixture
def dies_after_puback(monkeypatch: pytest.MonkeyPatch) -> DiesAfterPubAck:
    fault = DiesAfterPubAck(key="")
    publish = NatsCommandPublisher.submit_many

    async def submit_many(
        self: NatsCommandPublisher, commands: Sequence[SubmitJob]
    ) -> list[Unavailable | None]:
        refusals = await publish(self, commands)
        fault.published += [command for command in commands if command.idempotency_key == fault.key]
        if fault.failing and any(command.idempotency_key == fault.key for command in commands):
            raise ConnectionResetError("the api lost Postgres between the PubAck and the commit")
        return refusals

    monkeypatch.setattr(NatsCommandPublisher, "submit_many", submit_many)
    return fault


@pytest.fixture
async def engine(api_server: ApiServer) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(api_server.settings.database_url, pool_size=2, max_overflow=0, pre_ping=False)
    yield engine
    await engine.dispose()


async def commands_stored(js: JetStreamContext) -> int:
    """Sequence of the last message VTP_COMMANDS stored (consumed ones included)."""
    return int((await js.stream_info(subjects.COMMANDS_STREAM)).state.last_seq)


async def play_scheduler(js: JetStreamContext, command: SubmitJob) -> None:
    """What the scheduler publishes for a submit: the events its state machine derives."""
    decision = decide(None, command, POLICY)
    for event in decision.events:
        await js.publish(
            subjects.event_subject(event.job_id, event.type.value),
            event.model_dump_json().encode(),
            stream=subjects.EVENTS_STREAM,
            headers={"Nats-Msg-Id": f"{event.job_id}:{event.version}"},
        )


async def rows_of(engine: AsyncEngine, project_id: str) -> list[tuple[str, str | None]]:
    """The project's job rows (its dataset's validation job left out), with their keys."""
    async with engine.connect() as conn:
        statement = select(Job.id, Job.idempotency_key).where(
            Job.project_id == project_id, Job.framework != VALIDATION_FRAMEWORK
        )
        return [(row.id, row.idempotency_key) for row in await conn.execute(statement)]


async def failed_submit(project: Project, dataset: str, fault: DiesAfterPubAck, js: JetStreamContext) -> int:
    """The first request: its command stored, its row never committed. The stream's last sequence after."""
    before = await commands_stored(js)
    headers = {"Idempotency-Key": fault.key}
    response = await project.client.post("/v1/jobs", json=job_body(dataset), headers=headers)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "unavailable"
    assert await commands_stored(js) == before + 1
    assert [command.job_id for command in fault.published] == [
        ids_for_idempotency_key(project.id, fault.key)[0]
    ]
    assert (await project.client.get("/v1/jobs")).json()["items"] == []
    fault.failing = False
    return before + 1


async def test_a_retry_before_the_read_model_rebuilt_the_row_is_the_same_job(
    project: Project,
    dataset: str,
    js: JetStreamContext,
    engine: AsyncEngine,
    dies_after_puback: DiesAfterPubAck,
) -> None:
    dies_after_puback.key = "retry-before-rebuild"
    stored = await failed_submit(project, dataset, dies_after_puback, js)
    first = dies_after_puback.published[0]

    headers = {"Idempotency-Key": dies_after_puback.key}
    retry = await project.client.post("/v1/jobs", json=job_body(dataset), headers=headers)
    assert retry.status_code == 202, retry.text
    assert retry.json()["id"] == first.job_id
    # The same `Nats-Msg-Id`: JetStream kept the first copy and dropped the retry's.
    assert await commands_stored(js) == stored
    retried = dies_after_puback.published[1]
    assert (retried.job_id, retried.trace_id) == (first.job_id, first.trace_id)
    # And the scheduler, had the window passed, keeps the job it has.
    created = decide(None, first, POLICY).state
    assert decide(created, retried, POLICY).rejected_reason == "duplicate submit"

    await play_scheduler(js, first)
    await job_reaches(project.client, first.job_id, state="QUEUED")
    assert [job["id"] for job in (await project.client.get("/v1/jobs")).json()["items"]] == [first.job_id]
    assert await rows_of(engine, project.id) == [(first.job_id, dies_after_puback.key)]
    again = await project.client.post("/v1/jobs", json=job_body(dataset), headers=headers)
    assert (again.json()["id"], again.headers["idempotent-replayed"]) == (first.job_id, "true")


async def test_a_retry_after_the_read_model_rebuilt_the_row_finds_it_by_its_key(
    project: Project,
    dataset: str,
    js: JetStreamContext,
    engine: AsyncEngine,
    dies_after_puback: DiesAfterPubAck,
) -> None:
    dies_after_puback.key = "retry-after-rebuild"
    stored = await failed_submit(project, dataset, dies_after_puback, js)
    first = dies_after_puback.published[0]
    submitted = decide(None, first, POLICY).events[0]
    assert submitted.type == EventType.SUBMITTED
    assert submitted.payload["idempotency_key"] == dies_after_puback.key

    # The scheduler took the command; the read model re-creates the row from `job.submitted`, key included.
    await play_scheduler(js, first)
    await job_reaches(project.client, first.job_id, state="QUEUED")
    assert await rows_of(engine, project.id) == [(first.job_id, dies_after_puback.key)]

    headers = {"Idempotency-Key": dies_after_puback.key}
    retry = await project.client.post("/v1/jobs", json=job_body(dataset), headers=headers)
    assert retry.status_code == 202, retry.text
    assert (retry.json()["id"], retry.headers["idempotent-replayed"]) == (first.job_id, "true")
    assert await commands_stored(js) == stored  # nothing published again

    async def one_job() -> bool:
        return len((await project.client.get("/v1/jobs")).json()["items"]) == 1

    await eventually(one_job)
    assert await rows_of(engine, project.id) == [(first.job_id, dies_after_puback.key)]


async def test_keys_derive_ids_per_project(project: Project, other_project: Project, dataset: str) -> None:
    """The same key in two projects is two jobs; a key's job id is its own, not another project's."""
    mine = ids_for_idempotency_key(project.id, "shared-key")
    theirs = ids_for_idempotency_key(other_project.id, "shared-key")
    assert mine[0] != theirs[0]
    assert len(mine[0]) == len(mine[1]) == 32
    response = await project.client.post(
        "/v1/jobs", json=job_body(dataset), headers={"Idempotency-Key": "shared-key"}
    )
    assert response.json()["id"] == mine[0]
