"""The scheduler's way of taking messages (messaging.subscribers.BatchSubscription) on a real nats-server: a
lone message is handled at once, a burst shares batches, nothing in hand is left unsettled by a stop, a
failed batch comes again, and a consumer made as a pull consumer by an older release is made again as push."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from faststream.nats import NatsBroker, TestNatsBroker
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, RetentionPolicy, StreamConfig

from contracts import subjects
from contracts.streams import scheduler_consumer
from messaging.nats import connect
from messaging.subscribers import BatchSubscription, ensure_push_consumer
from tests.api.conftest import eventually
from vtp.embedded.nats_server import NatsServer


class Recorder:
    """A batch handler: records each batch, acks it after `pause` (a commit), or fails it on request."""

    def __init__(self, pause: float = 0.0, fail_first_delivery: bool = False) -> None:
        self.batches: list[list[bytes]] = []
        self.running = 0
        self.most_running = 0
        self._pause = pause
        self._fail_first_delivery = fail_first_delivery

    @property
    def handled(self) -> list[bytes]:
        return [data for batch in self.batches for data in batch]

    async def __call__(self, batch: Sequence[Msg]) -> None:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self._pause)
            if self._fail_first_delivery and batch[0].metadata.num_delivered == 1:
                raise RuntimeError("the database went away")
            self.batches.append([msg.data for msg in batch])
            await asyncio.gather(*(msg.ack() for msg in batch))
        finally:
            self.running -= 1


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    client = await connect(nats_server.url, "test-batches")
    yield client
    await client.close()


@pytest.fixture
async def stream(nc: NATS) -> AsyncIterator[str]:
    """A work-queue stream of its own, as the commands and reports streams are."""
    name = f"T{uuid.uuid4().hex[:8]}"
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"], retention=RetentionPolicy.WORK_QUEUE))
    yield name
    await js.delete_stream(name)


async def publish(js: JetStreamContext, stream: str, count: int) -> list[bytes]:
    sent = [f"m{index}".encode() for index in range(count)]
    acks = [await js.publish_async(f"{stream}.x", data) for data in sent]
    await asyncio.gather(*acks)
    return sent


async def subscribed(
    nats_server: NatsServer,
    stream: str,
    handle: Recorder,
    batch_size: int = 16,
    parallel: int = 2,
    **config: int,
) -> tuple[NatsBroker, BatchSubscription]:
    broker = NatsBroker(nats_server.url, apply_types=False, logger=None)
    consumer = scheduler_consumer("batches", f"{stream}.>", batch_size * parallel)
    for field, value in config.items():
        setattr(consumer, field, value)
    subscription = BatchSubscription(broker, stream, consumer, handle, batch_size, parallel)
    await broker.start()
    return broker, subscription


async def stopped(broker: NatsBroker, subscription: BatchSubscription) -> None:
    await subscription.stop()
    await broker.stop()


async def test_a_lone_message_is_handled_at_once_and_a_burst_shares_batches(
    nats_server: NatsServer, nc: NATS, stream: str
) -> None:
    handle = Recorder(pause=0.02)
    broker, subscription = await subscribed(nats_server, stream, handle)
    try:
        js = nc.jetstream()
        await publish(js, stream, 1)
        await eventually(lambda: _done(handle, 1), within=1.0)
        assert handle.batches == [[b"m0"]]

        burst = await publish(js, stream, 200)
        await eventually(lambda: _done(handle, 201))
        sizes = [len(batch) for batch in handle.batches[1:]]
        assert sorted(handle.handled[1:]) == sorted(burst)
        assert max(sizes) > 1, "a burst shares transactions"
        assert max(sizes) <= 16
        assert handle.most_running == 2, "up to `parallel` batches at once, never more"
    finally:
        await stopped(broker, subscription)


async def test_a_stop_settles_every_message_in_hand(nats_server: NatsServer, nc: NATS, stream: str) -> None:
    handle = Recorder(pause=0.05)
    broker, subscription = await subscribed(nats_server, stream, handle)
    js = nc.jetstream()
    sent = await publish(js, stream, 300)
    await eventually(lambda: _done(handle, 1))
    await stopped(broker, subscription)
    info = await js.consumer_info(stream, "batches")
    assert info.num_ack_pending == 0
    assert len(handle.handled) + info.num_pending == len(sent)  # handled, or never handed out


async def test_a_failed_batch_comes_again_and_then_applies(
    nats_server: NatsServer, nc: NATS, stream: str
) -> None:
    handle = Recorder(fail_first_delivery=True)
    broker, subscription = await subscribed(nats_server, stream, handle, ack_wait=1)
    try:
        sent = await publish(nc.jetstream(), stream, 5)
        await eventually(lambda: _done(handle, 5), within=10.0)
        assert sorted(handle.handled) == sorted(sent)
    finally:
        await stopped(broker, subscription)


async def test_a_pull_consumer_of_the_name_is_made_again_as_push_and_keeps_its_messages(
    nats_server: NatsServer, nc: NATS, stream: str
) -> None:
    js = nc.jetstream()
    await js.add_consumer(stream, ConsumerConfig(durable_name="batches", filter_subject=f"{stream}.>"))
    sent = await publish(js, stream, 5)
    await ensure_push_consumer(js, stream, "batches")
    handle = Recorder()
    broker, subscription = await subscribed(nats_server, stream, handle)
    try:
        await eventually(lambda: _done(handle, 5))
        assert sorted(handle.handled) == sorted(sent)
        assert (await js.consumer_info(stream, "batches")).config.deliver_subject is not None
    finally:
        await stopped(broker, subscription)


async def test_commands_and_reports_reach_their_own_subscriptions() -> None:
    """Routing only (FastStream's in-memory broker): each subject reaches the consumer that filters it."""
    broker = NatsBroker(apply_types=False, logger=None)
    commands, reports = Recorder(), Recorder()
    for stream, durable, filter_subject, handle in (
        (subjects.COMMANDS_STREAM, subjects.SCHEDULER_COMMANDS_CONSUMER, subjects.COMMANDS_ALL, commands),
        (subjects.REPORTS_STREAM, subjects.SCHEDULER_REPORTS_CONSUMER, subjects.REPORTS_ALL, reports),
    ):
        BatchSubscription(broker, stream, scheduler_consumer(durable, filter_subject, 8), handle, 8, 1)
    async with TestNatsBroker(broker) as test_broker:
        await test_broker.publish(b"submit", subjects.SUBMIT_JOB, stream=subjects.COMMANDS_STREAM)
        await test_broker.publish(b"cancel", subjects.CANCEL_JOB, stream=subjects.COMMANDS_STREAM)
        await test_broker.publish(
            b"beat", subjects.report_subject("j1", "heartbeat"), stream=subjects.REPORTS_STREAM
        )
        await eventually(lambda: _done(commands, 2))
        await eventually(lambda: _done(reports, 1))
    assert sorted(commands.handled) == [b"cancel", b"submit"]
    assert reports.handled == [b"beat"]


async def _done(handle: Recorder, count: int) -> bool:
    return len(handle.handled) >= count
