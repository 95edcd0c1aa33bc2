"""Subscriber benchmark (not a test): how fast each way of taking a durable consumer's messages hands them
to a batch handler, on a real nats-server, side by side in one run.

- `pull-loop`: bench.pull_loop.PullLoop, one open pull request per consumer (the scheduler's consumer
  before FastStream);
- `faststream-push`: a FastStream push subscriber putting each message into messaging.group_commit
  (messaging.subscribers.BatchSubscription, what the scheduler runs);
- `faststream-workers`: FastStream's own concurrency (`max_workers`), each message handled on its own;
- `faststream-pull-N`: FastStream's pull subscriber taking N messages per fetch into a group commit.

The handler stands in for a commit (1 ms per batch) and acks its batch. Printed per variant: publish ->
handled latency at a paced 50 messages/s (p50, p99) and messages/s for a burst, each the median of the rounds.

Run: `python bench/subscribers.py [--rounds 3] [--burst 5000]`
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faststream import AckPolicy as FastStreamAck
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, RetentionPolicy, StreamConfig

from bench.pull_loop import PullLoop
from contracts.streams import scheduler_consumer
from messaging.group_commit import GroupCommit
from messaging.nats import connect
from messaging.subscribers import BatchSubscription, raw_message
from vtp.embedded.nats_server import start_nats_server

STREAM, SUBJECTS, DURABLE = "BENCH", "bench.>", "bench"
BATCH, PARALLEL = 64, 4
PACED_RATE, PACED_COUNT = 50, 300


class Measured:
    """The batch handler: a 1 ms stand-in for a commit, then acks; records publish -> handled times."""

    def __init__(self) -> None:
        self.sent: dict[bytes, float] = {}
        self.latencies: list[float] = []
        self.expected = 0
        self.all_handled = asyncio.Event()

    def expect(self, count: int) -> None:
        self.latencies.clear()
        self.expected = count
        self.all_handled.clear()

    async def __call__(self, batch: Sequence[Msg]) -> None:
        await asyncio.sleep(0.001)
        await asyncio.gather(*(msg.ack() for msg in batch))
        now = time.perf_counter()
        self.latencies.extend(now - self.sent.pop(msg.data, now) for msg in batch)
        if len(self.latencies) >= self.expected:
            self.all_handled.set()


Start = Callable[[str, Measured], Awaitable[Callable[[], Awaitable[None]]]]


async def pull_loop(url: str, handle: Measured) -> Callable[[], Awaitable[None]]:
    nc = await connect(url, "bench-pull-loop")
    await nc.jetstream().add_consumer(STREAM, _config())  # a pull loop binds to a consumer made before
    loop = PullLoop(nc, STREAM, DURABLE, handle, BATCH, PARALLEL)
    task = asyncio.create_task(loop.run())

    async def stop() -> None:
        loop.stop()
        await task
        await nc.close()

    return stop


async def faststream_push(url: str, handle: Measured) -> Callable[[], Awaitable[None]]:
    broker = NatsBroker(url, apply_types=False, logger=None)
    subscription = BatchSubscription(broker, STREAM, _config(), handle, BATCH, PARALLEL)
    await broker.start()

    async def stop() -> None:
        await subscription.stop()
        await broker.stop()

    return stop


async def faststream_workers(url: str, handle: Measured) -> Callable[[], Awaitable[None]]:
    """FastStream's own concurrency: a worker per message, each message a batch of its own."""
    broker = NatsBroker(url, apply_types=False, logger=None)

    async def take(message: Msg) -> None:
        await handle([message])

    broker.subscriber(
        SUBJECTS,
        queue=DURABLE,
        stream=JStream(STREAM, declare=False),
        config=_config(),
        ack_policy=FastStreamAck.MANUAL,
        max_workers=BATCH * PARALLEL,
        decoder=raw_message,
        no_reply=True,
    )(take)
    await broker.start()
    return broker.stop


def faststream_pull(per_fetch: int) -> Start:
    """FastStream's pull subscriber (`per_fetch` messages a fetch), each message put into a group commit."""

    async def start(url: str, handle: Measured) -> Callable[[], Awaitable[None]]:
        broker = NatsBroker(url, apply_types=False, logger=None)
        group = GroupCommit(handle, BATCH, PARALLEL)

        async def take(message: Msg) -> None:
            group.put(message)

        subscriber = broker.subscriber(
            SUBJECTS,
            stream=JStream(STREAM, declare=False),
            durable=DURABLE,
            config=_config(),
            pull_sub=PullSub(batch_size=per_fetch, timeout=1.0),
            ack_policy=FastStreamAck.MANUAL,
            decoder=raw_message,
        )
        subscriber(take)
        await broker.start()

        async def stop() -> None:
            # As BatchSubscription.stop: settle what is in hand while the connection is still open.
            await subscriber.stop()
            await group.drain()
            await broker.stop()

        return stop

    return start


def _config() -> ConsumerConfig:
    return scheduler_consumer(DURABLE, SUBJECTS, BATCH * (PARALLEL + 1))


async def one_round(url: str, name: str, start: Start, burst: int) -> tuple[float, float, float]:
    nc = await connect(url, "bench-publisher")
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECTS], retention=RetentionPolicy.WORK_QUEUE))
    handle = Measured()
    stop = await start(url, handle)
    try:

        async def publish(count: int, rate: float | None) -> float:
            handle.expect(count)
            began = time.perf_counter()
            for index in range(count):
                data = f"{name}-{rate}-{index}".encode()
                handle.sent[data] = time.perf_counter()
                if rate is None:
                    await js.publish_async("bench.x", data)
                else:
                    await js.publish("bench.x", data)
                    await asyncio.sleep(max(0.0, began + (index + 1) / rate - time.perf_counter()))
            await asyncio.wait_for(handle.all_handled.wait(), 120)
            return time.perf_counter() - began

        await publish(200, None)  # warm up
        await publish(PACED_COUNT, PACED_RATE)
        latencies = sorted(handle.latencies)
        p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
        rate = burst / await publish(burst, None)
    finally:
        await stop()
        await js.delete_stream(STREAM)
        await nc.close()
    return p50 * 1000, p99 * 1000, rate


async def main(rounds: int, burst: int) -> None:
    variants: dict[str, Start] = {
        "pull-loop": pull_loop,
        "faststream-push": faststream_push,
        "faststream-workers": faststream_workers,
        "faststream-pull-1": faststream_pull(1),
        "faststream-pull-16": faststream_pull(16),
    }
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as folder:
        server = start_nats_server(Path(folder))
        try:
            for _ in range(rounds):  # interleaved, so that a noisy moment falls on every variant alike
                for name, start in variants.items():
                    results[name].append(await one_round(server.url, name, start, burst))
        finally:
            server.stop()
    base = statistics.median(rate for _, _, rate in results["pull-loop"])
    print(f"{'variant':<20} {'p50 ms':>8} {'p99 ms':>8} {'burst msg/s':>12} {'vs pull-loop':>13}")
    for name, figures in results.items():
        p50, p99, rate = (statistics.median(column) for column in zip(*figures, strict=True))
        print(f"{name:<20} {p50:>8.2f} {p99:>8.2f} {rate:>12.0f} {rate / base:>12.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", type=int, default=5000, help="messages in the burst phase")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.burst))
