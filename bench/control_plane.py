"""Control-plane benchmark (not a test): how fast the platform accepts, schedules and streams jobs.

It starts its own nats-server, Postgres and `vtp up` in a temporary folder, and drives them with:
- a lean HTTP client (bench/lean_http.py) submitting jobs through REST;
- a LOAD GENERATOR standing in for runner + trainer: it pulls dispatch messages of the `bench` pools and makes
  the trainer callbacks (heartbeat, progress, done) at once, so jobs finish without training anything.

It prints, side by side in one run:
- the floor: raw JetStream publish -> pull-consume round trip at 50 msg/s;
- submit -> QUEUED latency at a paced 50 submits/s, twice: to a pool nothing serves (only accepting and
  queueing), then while the load generator also runs every job to completion at that rate (each job's
  heartbeat, progress and done callbacks, its events through scheduler, read model and feeds); with the
  platform's CPU per job in each (every process of it, nats-server and Postgres included);
- submits/s accepted with N submits in flight to a pool nothing serves yet (as a GPU pool scaled to zero), the
  time until every job reached QUEUED; then jobs/s to SUCCEEDED once that pool's load generator starts;
- callback -> SSE latency with 200 SSE clients connected.

Run: `python bench/control_plane.py [--jobs 2000] [--sse-clients 200]`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from nats.aio.msg import Msg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.harness import EventWatch, bench_setup, upload_dataset
from bench.lean_http import LeanConnection, open_sse
from bench.otlp_receiver import ReceiverProcess, traces_to
from bench.pull_loop import PullLoop
from contracts import subjects
from contracts.dispatch import DispatchJob
from messaging.nats import connect, ensure_pool_consumer, ensure_streams, prepare

SETTLE_SECONDS = 10
WARM_UP_JOBS = 250


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ms(values: list[float]) -> str:
    p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
    return f"p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   (n={len(values)})"


def ratio(values: list[float], floor: list[float]) -> str:
    p50 = percentile(values, 0.5) / percentile(floor, 0.5)
    p99 = percentile(values, 0.99) / percentile(floor, 0.99)
    return f"p50 x{p50:6.1f}          p99 x{p99:6.1f}"


def row(label: str, figures: str) -> None:
    print(f"{label:52} {figures}")


async def paced(count: int, rate: float, action: Callable[[int], Awaitable[None]]) -> None:
    """Start `action(i)` at a steady rate (open loop: a slow answer does not slow the schedule)."""
    start = time.perf_counter()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(action(i)))
    await asyncio.gather(*tasks)


async def jetstream_floor(nats_url: str, count: int = 500, rate: float = 50) -> list[float]:
    """Raw JetStream publish -> pull-consume round trip on a throwaway stream: the floor under everything."""
    nc = await connect(nats_url, "bench-floor")
    js = nc.jetstream()
    await js.add_stream(name="BENCH_FLOOR", subjects=["bench.floor"])
    sub = await js.pull_subscribe("bench.floor", durable="floor")
    latencies: list[float] = []

    async def consume() -> None:
        while len(latencies) < count:
            try:
                msgs = await sub.fetch(batch=32, timeout=1)
            except TimeoutError:
                continue
            now = time.perf_counter()
            for msg in msgs:
                latencies.append(now - float(msg.data))
                await msg.ack()

    consumer = asyncio.create_task(consume())
    await paced(count, rate, lambda _: js.publish("bench.floor", str(time.perf_counter()).encode()))
    await asyncio.wait_for(consumer, 30)
    await js.delete_stream("BENCH_FLOOR")
    await nc.close()
    return latencies


def platform_cpu_seconds(exclude: set[int]) -> float:
    """CPU seconds so far of this benchmark's children (nats-server, Postgres, `vtp up` and all it started),
    less the processes in `exclude` (the load generators)."""
    total = 0.0
    for child in psutil.Process(os.getpid()).children(recursive=True):
        if child.pid in exclude:
            continue
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            total += times.user + times.system
    return total


class LoadGeneratorTrainer:
    """Stands in for runner + trainer: takes dispatch messages and makes the trainer's callbacks at once.

    With `hold=True` it only says heartbeat (the job becomes RUNNING) and keeps the token, so the benchmark
    can send progress callbacks later and time them to the SSE clients.
    """

    def __init__(self, nats_url: str, pool: str, hold: bool = False) -> None:
        self.nats_url, self.pool, self.hold = nats_url, pool, hold
        self.held: dict[str, DispatchJob] = {}
        self._connections: asyncio.Queue[LeanConnection] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.nc = await connect(self.nats_url, f"bench-trainer-{self.pool}")
        js = self.nc.jetstream()
        await ensure_streams(js)
        await ensure_pool_consumer(js, self.pool)
        # One pull request open at a time, messages handled as they arrive (the scheduler's consumer loop):
        # an idle load generator costs the platform's cores next to nothing; a busy one holds nothing back.
        self._loop = PullLoop(
            self.nc,
            subjects.DISPATCH_STREAM,
            subjects.pool_consumer(self.pool),
            self._handle,
            batch_size=64,
            parallel=4,
        )
        self._task = asyncio.create_task(self._loop.run())

    async def callback(self, job: DispatchJob, kind: str, body: dict) -> None:
        """POST one callback with this job's token, on a pooled keep-alive connection."""
        if self._connections.empty():
            connection = LeanConnection(job.callback_url, {})
        else:
            connection = self._connections.get_nowait()
        try:
            auth = f"Authorization: Bearer {job.callback_token}\r\n"
            response = await connection.request(
                "POST", f"/v1/callbacks/{kind}", json.dumps(body).encode(), auth
            )
            if response.status >= 300:
                raise RuntimeError(f"callback {kind} answered {response.status}: {response.body[:200]!r}")
        finally:
            self._connections.put_nowait(connection)

    async def _finish(self, job: DispatchJob) -> None:
        await self.callback(job, "heartbeat", {})
        if self.hold:
            self.held[job.job_id] = job
            return
        await self.callback(job, "progress", {"epoch": 1, "epochs": 1, "metrics": {"train_loss": 0.1}})
        await self.callback(job, "done", {"status": "succeeded", "metrics": {"val_accuracy": 1.0}})

    async def _handle(self, msgs: Sequence[Msg]) -> None:
        jobs = [DispatchJob.model_validate_json(msg.data) for msg in msgs]
        await asyncio.gather(*(self._finish(job) for job in jobs))
        await asyncio.gather(*(msg.ack() for msg in msgs))

    async def wait_holding(self, count: int) -> None:
        while len(self.held) < count:  # noqa: ASYNC110 - polling a plain dict filled by the fetch loop
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._task:
            self._loop.stop()
            await self._task
        await self.nc.close()


def run_load_generator(nats_url: str, pool: str) -> None:
    """A child process finishing every job of `pool` until it is terminated."""

    async def forever() -> None:
        trainer = LoadGeneratorTrainer(nats_url, pool)
        await trainer.start()
        await asyncio.Event().wait()

    asyncio.run(forever())


class Submitter:
    def __init__(self, api_url: str, key: str, dataset: str, connections: int) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        self.pool_of_connections: asyncio.Queue[LeanConnection] = asyncio.Queue()
        for _ in range(connections):
            self.pool_of_connections.put_nowait(LeanConnection(api_url, headers))
        self.dataset = dataset
        self.submitted_at: dict[str, float] = {}
        self.answered_at: dict[str, float] = {}
        self.failures: list[str] = []

    async def submit(self, pool: str) -> str | None:
        body = json.dumps(
            {
                "framework": "timm",
                "task": "classify",
                "model": "resnet18",
                "dataset": self.dataset,
                "pool": pool,
                "hyperparameters": {"epochs": 1},
            }
        ).encode()
        connection = await self.pool_of_connections.get()
        try:
            started = time.perf_counter()
            response = await connection.request("POST", "/v1/jobs", body)
        finally:
            self.pool_of_connections.put_nowait(connection)
        if response.status != 202:
            self.failures.append(f"{response.status} {response.body[:200]!r}")
            return None
        job_id = str(response.json()["id"])
        self.submitted_at[job_id] = started
        self.answered_at[job_id] = time.perf_counter()
        return job_id

    async def submit_into(self, pool: str, job_ids: set[str]) -> None:
        if job_id := await self.submit(pool):
            job_ids.add(job_id)


def make_dataset(url: str, key: str, folder: Path) -> str:
    from vtp.synthetic import make_imagefolder_archive

    archive = make_imagefolder_archive(folder / "shapes.zip", train_per_class=2, val_per_class=1, size=32)
    return upload_dataset(url, key, archive, "imagefolder")


async def sse_latency(
    api_url: str, key: str, trainer: LoadGeneratorTrainer, clients: int, callbacks: int, rate: float
) -> list[float]:
    """Connect `clients` SSE clients over the held jobs, then time progress callbacks to each of them."""
    jobs = list(trainer.held.values())
    latencies: list[float] = []
    streams = [
        await open_sse(
            api_url, f"/v1/jobs/{jobs[i % len(jobs)].job_id}/events", {"Authorization": f"Bearer {key}"}
        )
        for i in range(clients)
    ]

    async def read(reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            if not line.startswith(b"data:"):
                continue
            try:
                data = json.loads(line[5:])
            except ValueError:
                continue
            sent = data.get("payload", {}).get("metrics", {}).get("bench_sent_at")
            if data.get("type") == "job.progress" and sent is not None:
                latencies.append(time.time() - sent)

    tasks = [asyncio.create_task(read(reader)) for reader, _ in streams]
    await asyncio.sleep(2)  # every client past its history replay
    latencies.clear()

    async def send(i: int) -> None:
        job = jobs[i % len(jobs)]
        metrics = {"bench_sent_at": time.time()}
        await trainer.callback(
            job, "progress", {"epoch": 1 + i // len(jobs), "epochs": 10_000, "metrics": metrics}
        )

    await paced(callbacks, rate, send)
    await asyncio.sleep(2)
    for task in tasks:
        task.cancel()
    for _, writer in streams:
        writer.close()
    for job in jobs:
        await trainer.callback(job, "done", {"status": "succeeded"})
    return latencies


Rows = list[tuple[str, str]]


async def checkpoint(database_url: str) -> None:
    """A Postgres checkpoint, so that the phases measured see the server's steady state. Until its first
    checkpoint a fresh cluster (the benchmark makes one) creates each 16 MB WAL segment afresh, zero-filled
    and synced, and the commits waiting behind that stall 100-170 ms (it was the queueing phase's p99 in
    every run); after one, the next segments are those the checkpoint recycled, as on a server that has
    run a while."""
    engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CHECKPOINT"))
    finally:
        await engine.dispose()


async def run(args: argparse.Namespace, extra_env: dict[str, str] | None = None) -> Rows:
    """One whole run on a platform of its own (`extra_env` added to its environment); its figures."""
    with bench_setup() as setup:
        nats = setup.nats
        print("measuring the JetStream floor …", flush=True)
        floor = await jetstream_floor(nats.url)
        # Jobs may name only declared pools; `bench-burst` and `bench-idle` stay unserved (scaled to zero).
        await prepare(nats.url, ["bench", "bench-burst", "bench-idle", "bench-sse"])
        platform = setup.launch(extra_env)
        api_url, key = platform.url, platform.key
        dataset = make_dataset(api_url, key, setup.folder)
        watch = EventWatch()
        await watch.start(nats.url)
        # In a process of its own, so that finishing jobs does not slow this process's clocks.
        load_generator = multiprocessing.get_context("spawn").Process(
            target=run_load_generator, args=(nats.url, "bench"), daemon=True
        )
        load_generator.start()
        submitter = Submitter(api_url, key, dataset, connections=args.connections)

        # Not measured: the first jobs pay one-time costs (statements prepared per pooled connection,
        # the pool's consumer created, code paths run the first time). The figures are steady state.
        print(f"warm-up: {WARM_UP_JOBS} jobs at 50/s …", flush=True)
        warm_up_ids: set[str] = set()
        await paced(WARM_UP_JOBS, 50, lambda _: submitter.submit_into("bench", warm_up_ids))
        await watch.wait_for("succeeded", warm_up_ids, 120)
        await asyncio.sleep(SETTLE_SECONDS)  # the warm-up's tail (read models, feeds) done first
        await checkpoint(setup.database_url)

        generators = {load_generator.pid or 0}

        async def paced_phase(pool: str, finished: bool) -> tuple[list[float], list[float], float]:
            """submit->202 and submit->QUEUED at 50/s to `pool`, and the platform's CPU ms per job."""
            ids: set[str] = set()
            cpu_before = platform_cpu_seconds(generators)
            await paced(args.paced, 50, lambda _: submitter.submit_into(pool, ids))
            await watch.wait_for("queued", ids, 60)
            if finished:
                await watch.wait_for("succeeded", ids, 120)
            cpu_ms = (platform_cpu_seconds(generators) - cpu_before) * 1000 / max(1, len(ids))
            to_queued = [watch.seen["queued"][j] - submitter.submitted_at[j] for j in ids]
            to_answer = [submitter.answered_at[j] - submitter.submitted_at[j] for j in ids]
            return to_answer, to_queued, cpu_ms

        print(f"paced: {args.paced} submits at 50/s to a pool nothing serves …", flush=True)
        answer_idle, queued_idle, cpu_idle = await paced_phase("bench-idle", finished=False)
        await asyncio.sleep(SETTLE_SECONDS)
        print(f"paced: {args.paced} submits at 50/s, each job run to completion …", flush=True)
        to_answer, to_queued, cpu_finished = await paced_phase("bench", finished=True)

        # The burst goes to a pool that nothing serves yet (a GPU pool scaled to zero): it measures what
        # accepting and queueing cost. Then that pool's load generator starts and drains the queue.
        print(f"burst: {args.jobs} submits, {args.connections} in flight …", flush=True)
        burst_ids: set[str] = set()
        started = time.perf_counter()

        async def burst_worker(share: int) -> None:
            for _ in range(share):
                await submitter.submit_into("bench-burst", burst_ids)

        shares = [
            args.jobs // args.connections + (1 if i < args.jobs % args.connections else 0)
            for i in range(args.connections)
        ]
        await asyncio.gather(*(burst_worker(share) for share in shares))
        accepted_s = time.perf_counter() - started
        to_answer_burst = [submitter.answered_at[j] - submitter.submitted_at[j] for j in burst_ids]
        all_queued = await watch.wait_for("queued", burst_ids, 300) - started
        print("drain: the burst pool's load generator finishes the queued jobs …", flush=True)
        drainer = multiprocessing.get_context("spawn").Process(
            target=run_load_generator, args=(nats.url, "bench-burst"), daemon=True
        )
        drain_started = time.perf_counter()
        drainer.start()
        drained_s = await watch.wait_for("succeeded", burst_ids, 600) - drain_started
        drainer.terminate()

        # Each phase on its own: let the platform digest the burst (read models, SSE feed) first.
        await asyncio.sleep(SETTLE_SECONDS)
        print(f"SSE: {args.sse_clients} clients …", flush=True)
        holder = LoadGeneratorTrainer(nats.url, "bench-sse", hold=True)
        await holder.start()
        sse_jobs = {await submitter.submit("bench-sse") for _ in range(args.sse_jobs)} - {None}
        await holder.wait_holding(len(sse_jobs))
        to_sse = await sse_latency(api_url, key, holder, args.sse_clients, args.sse_callbacks, 50)
        await holder.stop()
        load_generator.terminate()

        n = len(burst_ids)
        if submitter.failures:
            print("first refusals:", submitter.failures[:3])
        cpu_share = f"({cpu_finished * 50 / 10:.0f}% of a core at 50/s)"
        return [
            ("JetStream publish->consume (floor), 50 msg/s", ms(floor)),
            ("submit->202 answer at 50 submits/s, queueing only", ms(answer_idle)),
            ("submit->QUEUED at 50 submits/s, queueing only", ms(queued_idle)),
            ("  ratio to floor", ratio(queued_idle, floor)),
            ("  platform CPU per job", f"{cpu_idle:7.2f} ms"),
            ("submit->202 answer at 50 jobs/s run to the end", ms(to_answer)),
            ("submit->QUEUED at 50 jobs/s run to the end", ms(to_queued)),
            ("  ratio to floor", ratio(to_queued, floor)),
            ("  platform CPU per job", f"{cpu_finished:7.2f} ms   {cpu_share}"),
            (f"callback->SSE, {args.sse_clients} clients", ms(to_sse)),
            ("  ratio to floor", ratio(to_sse, floor)),
            (
                f"submits accepted ({args.jobs} jobs, {args.connections} in flight)",
                f"{n / accepted_s:8.0f} /s   ({n} accepted, {len(submitter.failures)} refused)",
            ),
            ("  submit->202 answer in the burst", ms(to_answer_burst)),
            ("  every job QUEUED after", f"{all_queued:8.2f} s  ({n / all_queued:.0f} jobs/s)"),
            ("then finished by a load generator", f"{drained_s:8.2f} s  ({n / drained_s:.0f} jobs/s)"),
        ]


def accepted_per_second(rows: Rows) -> float:
    return next(float(figures.split()[0]) for label, figures in rows if label.startswith("submits accepted"))


async def compare_telemetry(args: argparse.Namespace) -> None:
    """The same run twice: telemetry off (no OTEL_* variables), then every span exported (100% sampling)
    to a local OTLP/HTTP receiver; the figures side by side."""
    off = await run(args, {"OTEL_SDK_DISABLED": "true"})
    receiver = ReceiverProcess()
    receiver.start()
    try:
        on = await run(args, traces_to(receiver.endpoint))
    finally:
        receiver.stop()
    print()
    print(f"{'':52} {'telemetry off':48} traces exported ({receiver.spans} spans received)")
    for (label, figures_off), (_, figures_on) in zip(off, on, strict=True):
        print(f"{label:52} {figures_off.strip():48} {figures_on.strip()}")
    accepted_off, accepted_on = (accepted_per_second(rows) for rows in (off, on))
    print(f"{'submits accepted, on / off':52} x{accepted_on / accepted_off:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000, help="submits in the burst phase")
    parser.add_argument("--connections", type=int, default=64, help="submits in flight in the burst phase")
    parser.add_argument("--paced", type=int, default=500, help="submits in each paced 50/s phase")
    parser.add_argument("--sse-clients", type=int, default=200)
    parser.add_argument("--sse-jobs", type=int, default=20, help="jobs the SSE clients are spread over")
    parser.add_argument(
        "--sse-callbacks", type=int, default=500, help="progress callbacks timed to SSE (50/s)"
    )
    parser.add_argument(
        "--telemetry",
        choices=("off", "compare"),
        default="off",
        help="compare: run twice, telemetry off and traces exported at 100%% sampling, side by side",
    )
    args = parser.parse_args()
    if args.telemetry == "compare":
        asyncio.run(compare_telemetry(args))
        return
    rows = asyncio.run(run(args))
    print()
    for label, figures in rows:
        row(label, figures)


if __name__ == "__main__":
    main()
