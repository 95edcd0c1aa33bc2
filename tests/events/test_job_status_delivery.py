"""The job-status subscriber on a real nats-server of its own (the events service of these tests shares the
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
from services.common.db import make_engine
from services.events import repository
from services.events.handlers import JobStatusConsumer, ensure_job_status_consumer
from tests.api.conftest import eventually
from tests.job_events import SwitchableDatabase, job_event, publish_event
from vtp.embedded.nats_server import NatsServer, start_nats_server

from .conftest import upgrade_events


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = start_nats_server(tmp_path_factory.mktemp("job-status-nats"))
    yield server
    server.stop()


@pytest.fixture
async def own_js(own_nats: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await connect(own_nats.url, "job-status-tests")
    js = nc.jetstream()
    await ensure_streams(js)
    await ensure_job_status_consumer(js)
    yield js
    await nc.drain()


@pytest.fixture(scope="module")
def events_tables(postgres_url: str) -> None:
    upgrade_events(postgres_url)


@pytest.fixture
async def database(postgres_url: str, events_tables: None) -> AsyncIterator[SwitchableDatabase]:
    engine = make_engine(postgres_url, pool_size=2)
    yield SwitchableDatabase(engine)
    await engine.dispose()


Running = Callable[[], AbstractAsyncContextManager[JobStatusConsumer]]


@pytest.fixture
def running(own_nats: NatsServer, database: SwitchableDatabase) -> Running:
    """The consumer as the events service runs it: subscribed through a broker of its own."""

    @asynccontextmanager
    async def run() -> AsyncIterator[JobStatusConsumer]:
        broker = make_broker(own_nats.url, "job-status-tests-broker")
        consumer = JobStatusConsumer(database)  # type: ignore[arg-type]
        consumer.subscribe(broker)
        await broker.start()
        try:
            yield consumer
        finally:
            await consumer.stop()
            await broker.stop()

    return run


async def status(database: SwitchableDatabase, job_id: str) -> tuple[str, int] | None:
    async with database.engine.connect() as conn:
        row = await repository.get_job_status(conn, job_id)
    return None if row is None else (row.state, row.version)


async def settled(js: JetStreamContext) -> bool:
    info = await js.consumer_info(subjects.EVENTS_STREAM, subjects.EVENTS_JOB_STATUS_CONSUMER)
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_a_poison_event_is_terminated_and_the_next_events_still_apply(
    own_js: JetStreamContext, database: SwitchableDatabase, running: Running
) -> None:
    job_id = uuid.uuid4().hex
    async with running():
        await own_js.publish(
            subjects.event_subject(job_id, EventType.FAILED.value),
            b"{not json",
            stream=subjects.EVENTS_STREAM,
        )
        await publish_event(own_js, job_event(job_id, EventType.RETRYING, JobState.QUEUED, 3, attempt=2))
        await publish_event(own_js, job_event(job_id, EventType.SUCCEEDED, JobState.SUCCEEDED, 5, attempt=2))

        async def applied() -> bool:
            return await status(database, job_id) == (JobState.SUCCEEDED.value, 5)

        await eventually(applied)
        await eventually(lambda: settled(own_js))  # the poison one terminated, not coming again


async def test_a_database_outage_naks_and_the_events_apply_once_it_returns(
    own_js: JetStreamContext, database: SwitchableDatabase, running: Running
) -> None:
    job_id = uuid.uuid4().hex
    async with running():
        database.down = True
        await publish_event(own_js, job_event(job_id, EventType.CANCELLED, JobState.CANCELLED, 2))

        async def redelivered() -> bool:
            info = await own_js.consumer_info(subjects.EVENTS_STREAM, subjects.EVENTS_JOB_STATUS_CONSUMER)
            return info.num_redelivered > 0

        await eventually(redelivered)  # nak'ed with a delay, and delivered again
        assert await status(database, job_id) is None
        database.down = False

        async def applied() -> bool:
            return await status(database, job_id) == (JobState.CANCELLED.value, 2)

        await eventually(applied)
        await eventually(lambda: settled(own_js))


async def test_a_restart_resumes_from_the_durable_without_loss(
    own_js: JetStreamContext, database: SwitchableDatabase, running: Running
) -> None:
    job_ids = [uuid.uuid4().hex for _ in range(20)]
    async with running():
        for job_id in job_ids[:10]:
            await publish_event(own_js, job_event(job_id, EventType.FAILED, JobState.FAILED, 4))
        await eventually(lambda: settled(own_js))
    for job_id in job_ids[10:]:  # stored while the service is down: the durable keeps its place
        await publish_event(own_js, job_event(job_id, EventType.FAILED, JobState.FAILED, 4))
    async with running():

        async def all_applied() -> bool:
            return [await status(database, job_id) for job_id in job_ids] == [("FAILED", 4)] * 20

        await eventually(all_applied)
        await eventually(lambda: settled(own_js))
