"""Scheduler benchmark (not a test): submit -> QUEUED through the scheduler alone, and where its time goes.

It starts one Postgres and, per run, a fresh nats-server and database, and the scheduler of one code tree
in a child process (`vtp serve scheduler` as it runs, uvloop and default batch settings). The child times
the phases of every batch (each public coroutine of `services/scheduler/repository.py`, the publisher's
render and send, the relay's deliver, BEGIN and COMMIT) by wrapping them, so any version can be timed
without changing it. This process publishes `SubmitJob` commands and watches VTP_EVENTS for `job.queued`:

- paced: `--submits` commands at `--rate` per second (open loop), publish -> `job.queued` seen;
- burst: `--burst` commands with `--in-flight` publishes outstanding, until every job is QUEUED.

Several code trees run in alternation, `--rounds` times each, so a shared machine's load falls on each
alike. Compare the committed code with the working tree:

    git clone -q . /tmp/sched-base
    python bench/scheduler_latency.py --tree before=/tmp/sched-base --tree after=.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = "scheduler ready"
WARM_UP = 200


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ---- the child: one code tree's scheduler, timed ------------------------------------------------------


def serve(code: Path, phases_file: Path) -> None:
    """Run the scheduler of the tree at `code` from the environment; SIGUSR1 forgets the timings so far,
    SIGUSR2 writes them to `phases_file` as {phase: [seconds, ...]}."""
    sys.path.insert(0, str(code))
    import functools
    import inspect

    import uvloop
    from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

    from services.scheduler import outbox, publisher, repository, service
    from services.scheduler.app import SchedulerApp
    from services.scheduler.settings import SchedulerSettings

    timings: dict[str, list[float]] = {}

    def record(name: str, started: float) -> None:
        timings.setdefault(name, []).append(time.perf_counter() - started)

    def timed_coroutine(name: str, fn: Callable[..., Awaitable[object]]) -> Callable[..., Awaitable[object]]:
        @functools.wraps(fn)
        async def wrapper(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                record(name, started)

        return wrapper

    def timed_function(name: str, fn: Callable[..., object]) -> Callable[..., object]:
        @functools.wraps(fn)
        def wrapper(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                record(name, started)

        return wrapper

    for name, fn in list(vars(repository).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(fn):
            setattr(repository, name, timed_coroutine(name, fn))
    methods = (
        (service.SchedulerService, "apply_batch", "batch (total)"),
        (publisher.Publisher, "render", "render"),
        (publisher.Publisher, "send", "publish + PubAcks"),
        (outbox.Relay, "deliver", "deliver (send + mark sent)"),
    )
    for owner, method, label in methods:
        if hasattr(owner, method):
            setattr(owner, method, timed_coroutine(label, getattr(owner, method)))
    connection = pg_asyncpg.AsyncAdapt_asyncpg_connection
    connection._start_transaction = timed_coroutine("BEGIN", connection._start_transaction)  # type: ignore[method-assign]
    connection.commit = timed_function("COMMIT", connection.commit)  # type: ignore[method-assign]

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, timings.clear)
        loop.add_signal_handler(signal.SIGUSR2, lambda: phases_file.write_text(json.dumps(timings)))
        app = SchedulerApp(SchedulerSettings())
        await app.start()
        print(READY, flush=True)
        await stop.wait()
        await app.stop()

    uvloop.run(run())


# ---- this process: the servers, the load and the figures ----------------------------------------------


def submit_command(job_id: str, pool: str) -> bytes:
    from contracts.commands import DatasetRef, SubmitJob
    from contracts.jobs import TimmSpec

    command = SubmitJob(
        job_id=job_id,
        project_id="bench",
        name="bench",
        spec=TimmSpec(framework="timm", task="classify", model="resnet18"),
        dataset=DatasetRef(id="ds1", format="imagefolder", storage_key="datasets/ds1/data.zip"),
        pool=pool,
        max_attempts=3,
        trace_id=uuid.uuid4().hex,
        submitted_at=datetime.now(UTC),
    )
    return command.model_dump_json().encode()


class Scheduler:
    """One tree's scheduler on a nats-server and database of its own."""

    def __init__(self, tree: Path, folder: Path, nats_url: str, database_url: str, keys: Path) -> None:
        self.phases_file = folder / "phases.json"
        env = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            "VTP_DATA_DIR": str(folder / "data"),
            "VTP_CALLBACK_PRIVATE_KEY_FILE": str(keys),
            "VTP_LOG_LEVEL": "WARNING",
        }
        migrate = f"from services.common import db; db.upgrade('scheduler', {database_url!r})"
        subprocess.run([sys.executable, "-c", migrate], env=env, check=True, cwd=tree)
        self.log = (folder / "scheduler.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(tree), "--phases-file", str(self.phases_file)],
            env=env,
            cwd=tree,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != READY:
            raise RuntimeError(f"the scheduler did not start: see {folder / 'scheduler.log'}")

    def reset_phases(self) -> None:
        self.process.send_signal(signal.SIGUSR1)

    async def phases(self) -> dict[str, list[float]]:
        self.phases_file.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR2)
        for _ in range(100):
            with contextlib.suppress(FileNotFoundError, ValueError):
                return dict(json.loads(self.phases_file.read_text()))
            await asyncio.sleep(0.05)
        raise TimeoutError("no phase timings from the scheduler")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class QueuedWatch:
    def __init__(self) -> None:
        self.queued: dict[str, float] = {}

    async def start(self, nc) -> None:  # type: ignore[no-untyped-def]
        from contracts import subjects

        async def on_event(msg) -> None:  # type: ignore[no-untyped-def]
            self.queued.setdefault(msg.subject.split(".")[3], time.perf_counter())

        await nc.subscribe(subjects.event_subject("*", "queued"), cb=on_event)

    async def wait(self, job_ids: list[str], limit_s: float) -> float:
        deadline = time.perf_counter() + limit_s
        while not all(job_id in self.queued for job_id in job_ids):
            if time.perf_counter() > deadline:
                missing = sum(job_id not in self.queued for job_id in job_ids)
                raise TimeoutError(f"{missing}/{len(job_ids)} jobs not QUEUED")
            await asyncio.sleep(0.01)
        return max(self.queued[job_id] for job_id in job_ids)


async def paced(js, watch: QueuedWatch, count: int, rate: float, pool: str) -> list[float]:  # type: ignore[no-untyped-def]
    from contracts import subjects

    sent: dict[str, float] = {}
    tasks = []
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        job_id = uuid.uuid4().hex
        body = submit_command(job_id, pool)
        sent[job_id] = time.perf_counter()
        tasks.append(
            asyncio.create_task(js.publish(subjects.SUBMIT_JOB, body, headers={"Nats-Msg-Id": job_id}))
        )
    await asyncio.gather(*tasks)
    await watch.wait(list(sent), 60)
    return [watch.queued[job_id] - started for job_id, started in sent.items()]


async def burst(js, watch: QueuedWatch, count: int, in_flight: int, pool: str) -> float:  # type: ignore[no-untyped-def]
    """Submits per second: `count` commands with `in_flight` publishes outstanding, to every job QUEUED."""
    from contracts import subjects

    bodies = {uuid.uuid4().hex: b"" for _ in range(count)}
    for job_id in bodies:
        bodies[job_id] = submit_command(job_id, pool)
    queue = list(bodies.items())
    started = time.perf_counter()

    async def worker() -> None:
        while queue:
            job_id, body = queue.pop()
            await js.publish(subjects.SUBMIT_JOB, body, headers={"Nats-Msg-Id": job_id})

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    done = await watch.wait(list(bodies), 300)
    return count / (done - started)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes used so far."""
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def postgres_backends(database: str) -> list[int]:
    """The Postgres backends serving `database` (the scheduler's pooled connections)."""
    import psutil

    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any(f" {database} " in f" {part} " for part in (p.info["cmdline"] or []))
        and any("postgres" in part for part in (p.info["cmdline"] or []))
    ]


async def one_run(
    name: str, tree: Path, folder: Path, args: argparse.Namespace, keys: Path
) -> dict[str, object]:
    from messaging.nats import connect, ensure_streams
    from vtp.embedded.nats_server import start_nats_server
    from vtp.embedded.postgres import start_postgres

    folder.mkdir(parents=True)  # noqa: ASYNC240 - between runs, nothing else waits
    nats = start_nats_server(folder / "nats")
    database = folder.name.replace("-", "_")
    database_url = start_postgres(args.pgdata, database=database)
    scheduler = Scheduler(tree, folder, nats.url, database_url, keys)
    nc = await connect(nats.url, "bench-scheduler")
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        watch = QueuedWatch()
        await watch.start(nc)
        # Not measured: prepared statements per pooled connection, the pool's consumer, first code paths.
        await paced(js, watch, WARM_UP, args.rate, "bench")
        await asyncio.sleep(1)
        scheduler.reset_phases()
        # CPU per submit: the scheduler's process and its Postgres backends (a backend's title names
        # its database), idle ticks included.
        pids = [scheduler.process.pid, *postgres_backends(database)]
        cpu_before = cpu_seconds(pids)
        latencies = await paced(js, watch, args.submits, args.rate, "bench")
        await asyncio.sleep(0.5)
        pids = [scheduler.process.pid, *postgres_backends(database)]  # any opened since: from 0
        paced_cpu = (cpu_seconds(pids) - cpu_before) / args.submits
        phases = await scheduler.phases()
        cpu_before = cpu_seconds(pids)
        rate = await burst(js, watch, args.burst, args.in_flight, "bench-burst") if args.burst else 0.0
        pids = [scheduler.process.pid, *postgres_backends(database)]
        burst_cpu = (cpu_seconds(pids) - cpu_before) / max(args.burst, 1)
    finally:
        await nc.close()
        scheduler.stop()
        nats.stop()
    p50, p99 = percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3
    print(f"  {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, burst {rate:.0f}/s", flush=True)
    return {
        "latencies": latencies,
        "phases": phases,
        "burst": rate,
        "cpu": (paced_cpu, burst_cpu),
    }


def report(results: dict[str, list[dict[str, object]]], args: argparse.Namespace) -> None:
    names = list(results)
    width = 30

    def column(label: str, figures: list[str]) -> None:
        print(f"{label:{width}}" + "".join(f"{figure:>24}" for figure in figures))

    print()
    column("", names)
    merged = {name: [x for run in runs for x in run["latencies"]] for name, runs in results.items()}  # type: ignore[attr-defined]
    column(
        f"submit->QUEUED p50 ({args.rate:.0f}/s)",
        [f"{percentile(merged[n], 0.5) * 1e3:.2f} ms" for n in names],
    )
    column(
        f"submit->QUEUED p99 ({args.rate:.0f}/s)",
        [f"{percentile(merged[n], 0.99) * 1e3:.2f} ms" for n in names],
    )
    column(
        "  p99 of each round",
        [" / ".join(f"{percentile(run['latencies'], 0.99) * 1e3:.1f}" for run in results[n]) for n in names],  # type: ignore[arg-type]
    )
    if args.burst:
        column(
            f"burst submits/s ({args.in_flight} in flight)",
            [" / ".join(f"{run['burst']:.0f}" for run in results[n]) for n in names],
        )
    column(
        "CPU ms per submit (paced, burst)",
        [
            " / ".join(f"{run['cpu'][0] * 1e3:.2f}, {run['cpu'][1] * 1e3:.2f}" for run in results[n])
            for n in names
        ],  # type: ignore[index]
    )
    print("\nper batch, p50 / p99 ms (calls per batch) during the paced phase:")
    phases: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    batches: dict[str, int] = {}
    for name, runs in results.items():
        for run in runs:
            for phase, values in run["phases"].items():  # type: ignore[attr-defined]
                phases[name].setdefault(phase, []).extend(values)
        batches[name] = len(phases[name].get("batch (total)", [])) or 1
    labels = list(dict.fromkeys(label for by_name in phases.values() for label in by_name))
    labels.sort(
        key=lambda label: -statistics.median(max((phases[n].get(label) or [0] for n in names), key=len))
    )
    for label in labels:
        figures = []
        for name in names:
            values = phases[name].get(label)
            if not values:
                figures.append("-")
                continue
            figures.append(
                f"{percentile(values, 0.5) * 1e3:.2f} / {percentile(values, 0.99) * 1e3:.2f}"
                f" ({len(values) / batches[name]:.1f})"
            )
        column(f"  {label}", figures)


async def main_async(args: argparse.Namespace) -> None:
    from services.common import tokens

    trees: list[tuple[str, Path]] = args.trees
    with tempfile.TemporaryDirectory(prefix="vtp-sched-bench-") as tmp:
        folder = Path(tmp)
        args.pgdata = folder / "pg"
        keys, _ = tokens.generate_keypair(folder / "keys")
        results: dict[str, list[dict[str, object]]] = {name: [] for name, _ in trees}
        try:
            for round_ in range(args.rounds):
                print(f"round {round_ + 1}/{args.rounds}", flush=True)
                for name, tree in trees:
                    run_folder = folder / f"run-{round_}-{name}"
                    results[name].append(await one_run(name, tree, run_folder, args, keys))
        finally:
            from vtp.up import stop_postgres

            stop_postgres(args.pgdata)
        report(results, args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", action="append", help="NAME=PATH of a code tree (repeatable; default: .)")
    parser.add_argument("--submits", type=int, default=300, help="paced submits per round")
    parser.add_argument("--rate", type=float, default=50.0, help="paced submits per second")
    parser.add_argument("--burst", type=int, default=2000, help="submits in the burst (0: none)")
    parser.add_argument("--in-flight", type=int, default=64, help="publishes outstanding in the burst")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each tree, in alternation")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--phases-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.phases_file)
        return
    sys.path.insert(0, str(ROOT))
    args.trees = [
        (name, Path(path).resolve())
        for name, _, path in (t.partition("=") for t in args.tree or [f"this={ROOT}"])
    ]
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
