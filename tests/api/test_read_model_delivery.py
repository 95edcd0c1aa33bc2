"""The read model's subscriber on a real nats-server of its own (the api server's read model shares the
session's durable): ack, nak, term, redelivery and resuming from the durable."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from nats.js import JetStreamContext

from contracts import subjects
from contracts.jobs import EventType, JobState
from messaging.broker import make_broker
from messaging.nats import connect, ensure_streams
from services.api import service
from services.api.read_model import ReadModelConsumer
from services.common.db import make_engine
from tests.job_events import SwitchableDatabase, job_event, publish_event
from vtp.embedded.nats_server import NatsServer, start_nats_server

from .conftest import Project, eventually


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = start_nats_server(tmp_path_factory.mktemp("read-model-nats"))
    yield server
    server.stop()


@pytest.fixture
async def own_js(own_nats: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await connect(own_nats.url, "read-model-tests")
    js = nc.jetstream()
    await ensure_streams(js)
    yield js
    await nc.drain()


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[SwitchableDatabase]:
    engine = make_engine(postgres_url, pool_size=2)
    yield SwitchableDatabase(engine)
    await engine.dispose()


Running = Callable[[], AbstractAsyncContextManager[ReadModelConsumer]]


@pytest.fixture
def running(own_nats: NatsServer, database: SwitchableDatabase) -> Running:
    """The read model as the api runs it: subscribed through a broker of its own."""

    @asynccontextmanager
    async def run() -> AsyncIterator[ReadModelConsumer]:
        broker = make_broker(own_nats.url, "read-model-tests-broker")
        consumer = ReadModelConsumer(database)  # type: ignore[arg-type]
        consumer.subscribe(broker)
        await broker.start()
        try:
            yield consumer
        finally:
            await consumer.stop()
            await broker.stop()

    return run


async def stored(database: SwitchableDatabase, job_id: str) -> int:
    async with database.engine.connect() as conn:
        return await service.stored_version(conn, job_id)


async def settled(js: JetStreamContext) -> bool:
    info = await js.consumer_info(subjects.EVENTS_STREAM, subjects.API_READ_MODEL_CONSUMER)
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_a_poison_event_is_terminated_and_the_next_events_still_apply(
    project: Project, own_js: JetStreamContext, database: SwitchableDatabase, running: Running
) -> None:
    job_id = uuid.uuid4().hex
    async with running():
        await own_js.publish(
            subjects.event_subject(job_id, "job.submitted"), b"{not json", stream=subjects.EVENTS_STREAM
        )
        orphan = job_event(uuid.uuid4().hex, EventType.SUBMITTED, JobState.PENDING, 1, project_id=project.id)
        await publish_event(own_js, orphan.model_copy(update={"project_id": "no-such-project"}))
        await publish_event(
            own_js, job_event(job_id, EventType.SUBMITTED, JobState.PENDING, 1, project_id=project.id)
        )
        await publish_event(
            own_js, job_event(job_id, EventType.QUEUED, JobState.QUEUED, 2, project_id=project.id)
        )

        async def applied() -> bool:
            return await stored(database, job_id) == 2

        await eventually(applied)
        await eventually(lambda: settled(own_js))  # the poison ones terminated, not coming again


async def test_a_database_outage_naks_and_the_events_apply_once_it_returns(
    project: Project, own_js: JetStreamContext, database: SwitchableDatabase, running: Running
) -> None:
    job_id = uuid.uuid4().hex
    async with running() as consumer:
        database.down = True
        await publish_event(
            own_js, job_event(job_id, EventType.SUBMITTED, JobState.PENDING, 1, project_id=project.id)
        )

        async def redelivered() -> bool:
            info = await own_js.consumer_info(subjects.EVENTS_STREAM, subjects.API_READ_MODEL_CONSUMER)
            return info.num_redelivered > 0

        await eventually(redelivered)  # nak'ed with a delay, and delivered again
        assert await stored(database, job_id) == 0
        database.down = False
        assert await consumer.caught_up(job_id, 1, within=5)
        await eventually(lambda: settled(own_js))


async def test_a_restart_resumes_from_the_durable_without_loss(
    project: Project, own_js: JetStreamContext, database: SwitchableDatabase, running: Running
) -> None:
    job_ids = [uuid.uuid4().hex for _ in range(20)]
    async with running():
        for job_id in job_ids[:10]:
            await publish_event(
                own_js, job_event(job_id, EventType.SUBMITTED, JobState.PENDING, 1, project_id=project.id)
            )
        await eventually(lambda: settled(own_js))
    # Stored while no api runs: the durable keeps its place.
    for job_id in job_ids[10:]:
        await publish_event(
            own_js, job_event(job_id, EventType.SUBMITTED, JobState.PENDING, 1, project_id=project.id)
        )
    for job_id in job_ids:
        await publish_event(
            own_js, job_event(job_id, EventType.QUEUED, JobState.QUEUED, 2, project_id=project.id)
        )
    async with running():

        async def all_applied() -> bool:
            return [await stored(database, job_id) for job_id in job_ids] == [2] * len(job_ids)

        await eventually(all_applied)
        await eventually(lambda: settled(own_js))
