"""Read-model benchmark (not a test): how soon an event stored in VTP_EVENTS is in the api's jobs table.

It starts its own nats-server and Postgres in a temporary folder and runs the api's read model alone (as
`services.api.app` wires it, on one broker), then:
- publishes job events at a paced rate (default 50/s: five events per job) and measures, per event, the time
  from just before its publish to the commit that applied it (`ReadModelConsumer` marking it applied);
- publishes a burst (default 5,000 events, all in flight at once) and measures events/s until the last
  one is applied.

Run: `python bench/read_model.py [--rate 50] [--events 500] [--burst 5000]`
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts import subjects
from contracts.events import JobEvent
from contracts.jobs import EventType, JobState
from messaging.broker import make_broker
from messaging.nats import ensure_streams
from services.api.keys import create_project
from services.api.read_model import ReadModelConsumer
from services.common.db import make_engine, upgrade
from vtp.embedded.nats_server import start_nats_server
from vtp.embedded.postgres import start_postgres

LIFE = (
    (EventType.SUBMITTED, JobState.PENDING),
    (EventType.QUEUED, JobState.QUEUED),
    (EventType.RUNNING, JobState.RUNNING),
    (EventType.PROGRESS, JobState.RUNNING),
    (EventType.SUCCEEDED, JobState.SUCCEEDED),
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def events_of(project_id: str, jobs: int) -> list[JobEvent]:
    """Each job's life, the jobs interleaved as on the stream."""
    ids = [uuid.uuid4().hex for _ in range(jobs)]
    return [
        JobEvent(
            job_id=job_id,
            project_id=project_id,
            type=event_type,
            state=state,
            attempt=1,
            version=version,
            time=datetime.now(UTC),
            trace_id=uuid.uuid4().hex,
            payload={"epoch": 1, "epochs": 2, "metrics": {"loss": 0.5}}
            if event_type is EventType.PROGRESS
            else {},
        )
        for version, (event_type, state) in enumerate(LIFE, start=1)
        for job_id in ids
    ]


@asynccontextmanager
async def read_model(nats_url: str, database_url: str) -> AsyncIterator[tuple[ReadModelConsumer, object]]:
    """The read model on a broker of its own, as the api runs it; yields it and the JetStream context."""
    engine = make_engine(database_url, pool_size=32, max_overflow=0, pre_ping=False)
    broker = make_broker(nats_url, "bench-read-model")
    consumer = ReadModelConsumer(engine)
    consumer.subscribe(broker)
    await broker.connect()
    js = broker.config.connection_state.stream
    await ensure_streams(js)
    await broker.start()
    try:
        yield consumer, js
    finally:
        await consumer.stop()
        await broker.stop()
        await engine.dispose()


def timing(consumer: ReadModelConsumer) -> dict[tuple[str, int], float]:
    """When each (job, version) was marked applied: right after its transaction committed."""
    applied: dict[tuple[str, int], float] = {}
    mark: Callable[[str, int], None] = consumer._mark_applied

    def marked(job_id: str, version: int) -> None:
        applied.setdefault((job_id, version), time.perf_counter())
        mark(job_id, version)

    consumer._mark_applied = marked  # type: ignore[method-assign]
    return applied


async def publish(js, event: JobEvent) -> asyncio.Future:  # type: ignore[no-untyped-def]
    return await js.publish_async(
        subjects.event_subject(event.job_id, event.type.value),
        event.model_dump_json().encode(),
        stream=subjects.EVENTS_STREAM,
        headers={"Nats-Msg-Id": f"{event.job_id}:{event.version}"},
    )


async def applied_all(
    applied: dict[tuple[str, int], float], keys: list[tuple[str, int]], within: float
) -> None:
    # Polled, but sparingly: the checking must not take the event loop from the consumer it measures.
    deadline = time.perf_counter() + within
    pending = set(keys)
    while pending and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
        pending = {key for key in pending if key not in applied}


async def main(rate: float, paced: int, burst: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="vtp-bench-rm-"))
    server = start_nats_server(folder / "nats")
    database_url = start_postgres(folder / "pg", database="bench")
    await asyncio.to_thread(upgrade, "api", database_url)
    project_id, _ = await create_project(database_url, "bench")
    try:
        async with read_model(server.url, database_url) as (consumer, js):
            applied = timing(consumer)
            # Warm up: connections in the pool, statements prepared.
            warm = events_of(project_id, 50)
            await asyncio.gather(*[await publish(js, event) for event in warm])
            await applied_all(applied, [(event.job_id, event.version) for event in warm], 30)

            latencies: list[float] = []
            sent: dict[tuple[str, int], float] = {}
            events = events_of(project_id, max(1, paced // len(LIFE)))
            start = time.perf_counter()
            for index, event in enumerate(events):
                await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
                sent[(event.job_id, event.version)] = time.perf_counter()
                await (await publish(js, event))
            await applied_all(applied, list(sent), 30)
            latencies = [applied[key] - at for key, at in sent.items() if key in applied]
            p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
            print(
                f"stored -> applied at {rate:g} events/s: p50 {p50:.2f} ms  p99 {p99:.2f} ms "
                f"(n={len(latencies)})"
            )

            events = events_of(project_id, max(1, burst // len(LIFE)))
            keys = [(event.job_id, event.version) for event in events]
            start = time.perf_counter()
            acks = [await publish(js, event) for event in events]
            await asyncio.gather(*acks)
            published = time.perf_counter() - start
            await applied_all(applied, keys, 120)
            done = max(applied[key] for key in keys) - start
            print(
                f"burst of {len(events)} events: published in {published:.2f} s, all applied after "
                f"{done:.2f} s: {len(events) / done:.0f} events/s"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--burst", type=int, default=5000)
    arguments = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(arguments.rate, arguments.events, arguments.burst))
