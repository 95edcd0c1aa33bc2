"""Each role can do what its code does, under its permissions alone: the services' own classes and functions
where they run without a database, else the exact JetStream calls they make. (test_up_embedded.py runs every
part for real under `vtp up`.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import httpx
import pytest
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig
from sqlalchemy.exc import OperationalError

from contracts import subjects
from contracts.callbacks import HeartbeatAnswer
from contracts.commands import CancelJob
from contracts.credentials import Grant
from contracts.dispatch import DispatchJob
from contracts.jobs import EventType, JobState, TimmSpec
from contracts.streams import scheduler_consumer
from messaging import nats as common_nats
from messaging.broker import make_broker
from messaging.permissions import API, EVENTS, SCHEDULER, inbox_prefix, runner_user
from messaging.subscribers import BatchSubscription, ensure_push_consumer
from services.api.feed import EventFeed
from services.api.messaging import NatsCommandPublisher
from services.api.read_model import ReadModelConsumer
from services.common import tokens
from services.events.handlers import JobStatusConsumer, ensure_job_status_consumer
from services.events.renewal import TokenRenewer
from tests.api.conftest import eventually
from tests.job_events import job_event, publish_event
from tests.nats_auth.conftest import POOL_A, POOL_B, ConnectAs, SecuredNats
from trainers import jsz, runner, takeover

NEW_POOL = "gpu-c"


def cancel_command(job_id: str) -> CancelJob:
    return CancelJob(job_id=job_id, project_id="p", trace_id=uuid.uuid4().hex, requested_at=datetime.now(UTC))


def refusals(into: list[Exception]) -> Callable[[Exception], Awaitable[None]]:
    """A broker's `error_cb` keeping what the server refused (permission violations among them)."""

    async def on_error(exc: Exception) -> None:
        into.append(exc)

    return on_error


class UnavailableDatabase:
    """An engine whose database is down: the consumers nak what they cannot apply (their transient path),
    so they run here without Postgres."""

    def begin(self) -> None:
        raise OperationalError("connect", None, ConnectionRefusedError())


async def test_api_publishes_commands_and_follows_job_events(
    connect_as: ConnectAs, secured: SecuredNats
) -> None:
    api, scheduler = await connect_as(API), await connect_as(SCHEDULER)
    job_id = uuid.uuid4().hex
    await NatsCommandPublisher(api.js).cancel(cancel_command(job_id))  # returns once stored (PubAck)

    # The SSE feed: a live ordered consumer, and one per history read.
    feed = EventFeed(api.js)
    await feed.start()
    try:
        with feed.listen(job_id=job_id) as listener:
            seq = await publish_event(
                scheduler.js, job_event(job_id, EventType.SUBMITTED, JobState.PENDING, 1)
            )
            assert [item.seq for item in await listener.get(5)] == [seq]
        history = feed.history(subjects.job_events_filter(job_id), 0)
        assert [item.seq async for item in history] == [seq]
    finally:
        await feed.stop()

    # The read model's durable push consumer delivers into the api's inbox, in its deliver group, through
    # the api's broker.
    refused: list[Exception] = []
    broker = make_broker(
        secured.server.url, "test-api-broker", secured.users.credentials(API), error_cb=refusals(refused)
    )
    read_model = ReadModelConsumer(UnavailableDatabase())  # type: ignore[arg-type]
    read_model.subscribe(broker)
    await broker.connect()
    await broker.start()
    try:

        async def delivered() -> bool:
            info = await api.js.consumer_info(subjects.EVENTS_STREAM, subjects.API_READ_MODEL_CONSUMER)
            assert info.config.deliver_subject is not None
            assert info.config.deliver_subject.startswith(f"{inbox_prefix(API)}.")
            return bool(info.push_bound) and info.delivered.stream_seq >= seq

        await eventually(delivered)
    finally:
        await read_model.stop()
        await broker.stop()
    api.assert_nothing_refused()
    assert refused == []


async def test_scheduler_takes_commands_and_reports_and_publishes_events_and_dispatches(
    connect_as: ConnectAs, secured: SecuredNats
) -> None:
    api, events, scheduler = await connect_as(API), await connect_as(EVENTS), await connect_as(SCHEDULER)
    job_id = uuid.uuid4().hex
    await NatsCommandPublisher(api.js).cancel(cancel_command(job_id))
    report = subjects.report_subject(job_id, "heartbeat")
    await events.js.publish(report, b"{}", stream=subjects.REPORTS_STREAM)

    taken: list[str] = []

    async def handle(batch: Sequence[Msg]) -> None:
        for msg in batch:
            taken.append(msg.subject)
            await msg.ack()

    # As the scheduler subscribes: its durables as push consumers, one made as a pull consumer by an older
    # release made again (it may delete its own), delivering into its inbox.
    await scheduler.js.add_consumer(
        subjects.REPORTS_STREAM,
        ConsumerConfig(durable_name=subjects.SCHEDULER_REPORTS_CONSUMER, filter_subject=subjects.REPORTS_ALL),
    )
    refused: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        refused.append(exc)

    broker = make_broker(
        secured.server.url,
        "test-scheduler-broker",
        secured.users.credentials(SCHEDULER),
        apply_types=False,
        logger=None,
        error_cb=on_error,
    )
    await broker.connect()
    subscriptions = []
    for stream, durable, filter_subject in (
        (subjects.COMMANDS_STREAM, subjects.SCHEDULER_COMMANDS_CONSUMER, subjects.COMMANDS_ALL),
        (subjects.REPORTS_STREAM, subjects.SCHEDULER_REPORTS_CONSUMER, subjects.REPORTS_ALL),
    ):
        await ensure_push_consumer(scheduler.js, stream, durable)
        config = scheduler_consumer(durable, filter_subject, 8)
        subscriptions.append(BatchSubscription(broker, stream, config, handle, batch_size=8, parallel=1))
    await broker.start()
    try:

        async def both_taken() -> bool:
            return {subjects.CANCEL_JOB, report} <= set(taken)

        await eventually(both_taken)
        info = await scheduler.js.consumer_info(subjects.REPORTS_STREAM, subjects.SCHEDULER_REPORTS_CONSUMER)
        assert info.config.deliver_subject is not None
        assert info.config.deliver_subject.startswith(f"{inbox_prefix(SCHEDULER)}.")
    finally:
        for subscription in subscriptions:
            await subscription.stop()
        await broker.stop()
    assert refused == []

    # Its decisions: job events, and a dispatch to a pool it dispatches to first (it creates the consumer).
    await common_nats.ensure_pool_consumer(scheduler.js, NEW_POOL)
    await publish_event(scheduler.js, job_event(job_id, EventType.CANCELLED, JobState.CANCELLED, 1))
    dispatched = await scheduler.js.publish_async(
        subjects.dispatch_subject(NEW_POOL),
        b"{}",
        stream=subjects.DISPATCH_STREAM,
        headers={"Nats-Msg-Id": f"{job_id}:1"},
    )
    assert (await dispatched).stream == subjects.DISPATCH_STREAM
    scheduler.assert_nothing_refused()


async def test_events_publishes_reports_and_follows_job_statuses(
    connect_as: ConnectAs, secured: SecuredNats
) -> None:
    events, scheduler = await connect_as(EVENTS), await connect_as(SCHEDULER)
    job_id = uuid.uuid4().hex
    ack = await events.js.publish(
        subjects.report_subject(job_id, "done"),
        b"{}",
        stream=subjects.REPORTS_STREAM,
        headers={"Nats-Msg-Id": f"{job_id}:1:done"},
    )
    assert ack.stream == subjects.REPORTS_STREAM

    # The job-status consumer as the events service runs it: a push consumer its broker makes, delivering
    # into the events inbox.
    await ensure_job_status_consumer(events.js)
    seq = await publish_event(scheduler.js, job_event(job_id, EventType.SUCCEEDED, JobState.SUCCEEDED, 1))
    credentials = secured.users.credentials(EVENTS)
    refused: list[Exception] = []
    broker = make_broker(secured.server.url, "test-events-broker", credentials, error_cb=refusals(refused))
    job_statuses = JobStatusConsumer(UnavailableDatabase())  # type: ignore[arg-type]
    job_statuses.subscribe(broker)
    await broker.connect()
    await broker.start()
    try:

        async def delivered() -> bool:
            info = await events.js.consumer_info(subjects.EVENTS_STREAM, subjects.EVENTS_JOB_STATUS_CONSUMER)
            return info.delivered.stream_seq >= seq

        await eventually(delivered)
    finally:
        await job_statuses.stop()
        await broker.stop()
    events.assert_nothing_refused()
    assert refused == []


async def test_a_runner_takes_one_dispatch_of_its_pool_and_settles_it(
    connect_as: ConnectAs, secured: SecuredNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = await connect_as(SCHEDULER)
    for name, value in secured.users.environ(runner_user(POOL_A)).items():
        monkeypatch.setenv(name, value)
    settings = runner.RunnerSettings(
        nats_url=secured.server.url, pool=POOL_A, heartbeat_interval=1, fetch_timeout=0.5
    )
    # The runner itself, as its user: finds its stream and consumer in place (reading only), pulls.
    assert await runner.run(settings) == 0  # nothing waiting
    await scheduler.js.publish(subjects.dispatch_subject(POOL_A), b"{}", stream=subjects.DISPATCH_STREAM)
    assert await runner.run(settings) == 1  # took it; not a DispatchJob: terminated

    # Keeping a message alive while its trainer runs, then the ack.
    await scheduler.js.publish(subjects.dispatch_subject(POOL_A), b"{}", stream=subjects.DISPATCH_STREAM)
    runner_a = await connect_as(runner_user(POOL_A))
    pull = await runner_a.js.pull_subscribe_bind(
        durable=subjects.pool_consumer(POOL_A), stream=subjects.DISPATCH_STREAM
    )
    [msg] = await pull.fetch(1, timeout=2)
    await pull.unsubscribe()
    await msg.in_progress()
    await msg.ack_sync()
    info = await runner_a.js.consumer_info(subjects.DISPATCH_STREAM, subjects.pool_consumer(POOL_A))
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
    runner_a.assert_nothing_refused()


async def test_the_pool_supervisor_checks_its_consumer_and_reads_the_lag_over_http(
    connect_as: ConnectAs, secured: SecuredNats
) -> None:
    scheduler, pool_b = await connect_as(SCHEDULER), await connect_as(runner_user(POOL_B))
    # Its start-up, as its user: streams and consumer are in place, so it only reads them.
    await common_nats.ensure_streams(pool_b.js)
    await common_nats.ensure_pool_consumer(pool_b.js, POOL_B)
    for _ in range(2):
        await scheduler.js.publish(subjects.dispatch_subject(POOL_B), b"{}", stream=subjects.DISPATCH_STREAM)

    def lag() -> int:
        # NATS permissions do not reach the monitoring endpoint: KEDA and the local pool read it as before.
        with httpx.Client() as client:
            return jsz.read_lag(
                client, secured.server.monitor_url, subjects.DISPATCH_STREAM, subjects.pool_consumer(POOL_B)
            )

    assert await asyncio.to_thread(lag) == 2
    pull = await pool_b.js.pull_subscribe_bind(
        durable=subjects.pool_consumer(POOL_B), stream=subjects.DISPATCH_STREAM
    )
    for msg in await pull.fetch(2, timeout=2):
        await msg.ack_sync()
    await pull.unsubscribe()
    assert await asyncio.to_thread(lag) == 0
    pool_b.assert_nothing_refused()


async def test_the_scheduler_answers_credentials_requests_of_a_runner_and_the_events_service(
    connect_as: ConnectAs, secured: SecuredNats
) -> None:
    """The request/reply of contracts/credentials.py under the roles: a runner asks on its pool's subject,
    the events service on the renewal subject, and the scheduler answers into their inboxes."""
    scheduler = await connect_as(SCHEDULER)
    asked: list[str] = []

    async def answer(msg: Msg) -> None:
        asked.append(msg.subject)
        grant = Grant(callback_token="new-token", expires_at=datetime.now(UTC), dataset_url="http://d")
        await msg.respond(grant.model_dump_json().encode())

    await scheduler.nc.subscribe(subjects.CREDENTIALS_ALL, queue="scheduler-credentials", cb=answer)
    await scheduler.nc.flush()

    broker = make_broker(secured.server.url, "test-runner", secured.users.credentials(runner_user(POOL_A)))
    await broker.connect()
    try:
        job = DispatchJob(
            job_id="j1",
            attempt=1,
            pool=POOL_A,
            spec=TimmSpec(framework="timm", task="classify", model="resnet18"),
            callback_url="http://events/v1/callbacks",
            callback_token="old-token",
            dataset_url="http://old",
            dataset_format="imagefolder",
            trace_id=uuid.uuid4().hex,
            expires_at=datetime.now(UTC),
        )
        assert (await takeover.fresh_credentials(broker, job)).callback_token == "new-token"
    finally:
        await broker.stop()

    events = await connect_as(EVENTS)
    claims = tokens.CallbackClaims(job_id="j1", attempt=1, expires_at=0)
    renewed = await TokenRenewer(events.nc).renewed(claims, HeartbeatAnswer(stop=False))
    assert renewed.callback_token == "new-token"
    assert asked == [subjects.take_over_subject(POOL_A), subjects.CREDENTIALS_RENEW]
