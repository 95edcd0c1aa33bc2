"""Fault injection: SIGKILL every part of `vtp up` under submit load and with jobs training, then count.

    .venv/bin/python -m bench.chaos [--submits 300] [--clients 16] [--training-jobs 3]

One embedded platform (`vtp up` with its own nats-server and Postgres) in a temporary folder, loopback only.
While clients submit jobs with an `Idempotency-Key` (retrying every failure until a 2xx, as a careful client
does) and a few tiny timm jobs train, each part is killed in turn with SIGKILL: api, scheduler, events,
pool, runner, trainer, nats-server, Postgres and `vtp up` itself (then started again on the same folder).
Recovery time of each kill: until a probe job submitted after it is QUEUED. SSE clients follow the training
jobs and reconnect with `Last-Event-ID`. At the end it prints accepted / lost / duplicated / stuck jobs,
whether every SSE client saw each event of its job exactly once, the recovery times, and exits 1 unless
every count that must be 0 is 0. Bounded: every wait has a deadline (about 5 minutes in all).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.harness import upload_dataset
from vtp.embedded.ports import free_port
from vtp.launch import LaunchedPlatform, launch
from vtp.synthetic import make_imagefolder_archive

IDLE_POOL = "chaos-idle"  # a pool no runner serves: its jobs must end QUEUED, each exactly once
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
TARGETS = (
    "api",
    "scheduler",
    "events",
    "pool",
    "runner",
    "trainer",
    "nats-server",
    "postgres",
    "vtp-up",
)
RECOVERY_LIMIT = 90.0
TRAINING = {
    "framework": "timm",
    "task": "classify",
    "model": "resnet18",
    # Long enough (about a minute on 2 cores) to be training when its runner and trainer are killed.
    "hyperparameters": {"epochs": 40, "batch_size": 8, "image_size": 32},
}


def say(message: str) -> None:
    print(f"chaos: {message}", flush=True)


# --- the platform's processes ----------------------------------------------------------------------


def _matches(process: psutil.Process, target: str) -> bool:
    try:
        name, cmdline = process.name(), " ".join(process.cmdline())
        if target == "nats-server":
            return name.startswith("nats-server")
        if target == "postgres":
            # The postmaster: the one postgres whose parent is not a postgres.
            return name == "postgres" and process.parent().name() != "postgres"
        if target in ("api", "scheduler", "events", "pool"):
            return cmdline.endswith(f"serve {target}")
        if target == "runner":
            return "trainers.runner" in cmdline
        if target == "trainer":
            return any(f"trainers.{framework}" in cmdline for framework in ("timm", "ultralytics"))
    except psutil.Error:
        return False
    return False


def find(root_pid: int, data_dir: Path, target: str) -> psutil.Process | None:
    """The target among `vtp up`'s descendants, or among the processes that name its data dir (a server
    that daemonized is no descendant)."""
    try:
        candidates = psutil.Process(root_pid).children(recursive=True)
    except psutil.Error:
        candidates = []
    candidates += processes_of(data_dir)
    return next((p for p in candidates if _matches(p, target)), None)


def processes_of(data_dir: Path) -> list[psutil.Process]:
    """Every process whose command line or environment names the data dir: what `vtp up` started."""
    found = []
    marker = str(data_dir)
    for process in psutil.process_iter(["cmdline"]):
        try:
            if process.pid == os.getpid():
                continue
            if marker in " ".join(process.info["cmdline"] or ()) or marker in process.environ().get(
                "VTP_DATA_DIR", ""
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


# --- clients ------------------------------------------------------------------------------------------


@dataclass
class Load:
    """Submits with idempotency keys, each retried until accepted (or the deadline)."""

    url: str
    key: str
    dataset: str
    accepted: set[str] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)

    async def submit(self, client: httpx.AsyncClient, name: str, job: dict[str, Any], pool: str) -> str:
        body = {"name": name, "dataset": self.dataset, "pool": pool, **job}
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": name}
        deadline = time.monotonic() + RECOVERY_LIMIT * 2
        while time.monotonic() < deadline:
            try:
                response = await client.post(f"{self.url}/v1/jobs", json=body, headers=headers, timeout=10)
                if response.status_code < 300:
                    self.accepted.add(name)
                    return str(response.json()["id"])
                self.failures[str(response.status_code)] += 1
                if response.status_code < 500 and response.status_code != 429:
                    raise RuntimeError(f"submit refused: {response.status_code} {response.text}")
            except httpx.HTTPError as exc:
                self.failures[type(exc).__name__] += 1
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{name} was never accepted")

    async def run(self, count: int, clients: int, spacing: float) -> None:
        names = iter(range(count))

        async def client_loop() -> None:
            async with httpx.AsyncClient() as client:
                for index in names:
                    await self.submit(client, f"chaos-{index:04d}", TRAINING, IDLE_POOL)
                    await asyncio.sleep(spacing)

        await asyncio.gather(*(client_loop() for _ in range(clients)))


@dataclass
class SseFollower:
    """Follows one job's events, reconnecting with `Last-Event-ID` whenever the stream breaks."""

    url: str
    key: str
    job_id: str
    seen: list[tuple[int, int]] = field(default_factory=list)  # (SSE id, event version)
    reconnects: int = 0

    async def run(self, deadline: float) -> None:
        last_id: int | None = None
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=30)) as client:
            while time.monotonic() < deadline:
                headers = {"Authorization": f"Bearer {self.key}"}
                if last_id is not None:
                    headers["Last-Event-ID"] = str(last_id)
                try:
                    async with client.stream(
                        "GET", f"{self.url}/v1/jobs/{self.job_id}/events", headers=headers
                    ) as response:
                        if response.status_code != 200:
                            raise httpx.HTTPError(f"status {response.status_code}")
                        async for event_id, data in _events(response):
                            self.seen.append((event_id, data["version"]))
                            last_id = event_id
                            if data["state"] in TERMINAL:
                                return
                        # The stream ended (its server was killed): reconnect below.
                except httpx.HTTPError:
                    pass
                self.reconnects += 1
                await asyncio.sleep(0.5)

    async def run_until(self, deadline: float) -> None:
        """`run`, cut off at the deadline: keepalives would hold a stream open past it for ever."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.run(deadline), timeout=max(0.0, deadline - time.monotonic()))


async def _events(response: httpx.Response):  # type: ignore[no-untyped-def]
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields and "id" in fields:
                yield int(fields["id"]), json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class Kill:
    target: str
    killed: bool
    recovery_s: float | None = None
    note: str = ""


class Chaos:
    def __init__(self, folder: Path, args: argparse.Namespace) -> None:
        self.folder = folder
        self.data_dir = folder / "platform"
        self.port = free_port()
        self.args = args
        self.env = {
            **os.environ,
            # Fast failure detection and retries, so killed attempts come back within the run.
            "VTP_HEARTBEAT_TIMEOUT": "8",
            "VTP_HEARTBEAT_INTERVAL": "1",
            "VTP_RETRY_BACKOFF_BASE": "1",
            "VTP_RETRY_BACKOFF_MAX": "4",
            "VTP_POOL_CONCURRENCY": "2",
        }
        for variable in ("NATS_URL", "NATS_MONITOR_URL", "DATABASE_URL"):
            self.env.pop(variable, None)  # everything embedded: nats-server and Postgres are targets too
        self.platform: LaunchedPlatform | None = None
        self.kills: list[Kill] = []
        self.probes = 0

    def start(self) -> LaunchedPlatform:
        self.platform = launch(self.data_dir, self.port, self.env, self.folder / "vtp-up.log", 180)
        # Jobs may name only a declared pool: declare the one nobody serves, as an operator would.
        prepare = [sys.executable, "-m", "vtp.cli", "--data-dir", str(self.data_dir), "pools", "prepare"]
        subprocess.run([*prepare, IDLE_POOL], env=self.env, check=True, capture_output=True, timeout=60)
        return self.platform

    async def probe(self, load: Load) -> float:
        """Seconds until a new job is accepted and QUEUED."""
        started = time.monotonic()
        self.probes += 1
        async with httpx.AsyncClient() as client:
            job_id = await load.submit(client, f"probe-{self.probes:03d}", TRAINING, IDLE_POOL)
            headers = {"Authorization": f"Bearer {load.key}"}
            while time.monotonic() - started < RECOVERY_LIMIT:
                try:
                    response = await client.get(f"{load.url}/v1/jobs/{job_id}", headers=headers, timeout=5)
                    if response.status_code == 200 and response.json()["state"] == "QUEUED":
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError("the probe job never became QUEUED")

    async def kill(self, target: str, load: Load) -> Kill:
        assert self.platform is not None
        if target == "vtp-up":
            return await self.kill_vtp_up(load)
        deadline = time.monotonic() + 30
        process = find(self.platform.process.pid, self.data_dir, target)
        while process is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # runners and trainers exist only while a job trains
            process = find(self.platform.process.pid, self.data_dir, target)
        if process is None:
            return Kill(target, killed=False, note="not running")
        process.send_signal(signal.SIGKILL)
        try:
            return Kill(target, killed=True, recovery_s=await self.probe(load))
        except TimeoutError as exc:
            return Kill(target, killed=True, note=str(exc))

    async def kill_vtp_up(self, load: Load) -> Kill:
        assert self.platform is not None
        before = self.platform.process.pid
        self.platform.process.send_signal(signal.SIGKILL)
        self.platform.process.wait()
        await asyncio.sleep(3)
        leftovers = [p for p in processes_of(self.data_dir) if p.pid != before]
        note = f"{len(leftovers)} processes left running" if leftovers else "no process left"
        for process in leftovers:
            process.kill()  # so the run can go on, counted as a failure
        started = time.monotonic()
        await asyncio.to_thread(self.start)
        recovery = time.monotonic() - started + await self.probe(load)
        return Kill("vtp-up", killed=True, recovery_s=recovery, note=note if leftovers else "")


async def all_jobs(client: httpx.AsyncClient, url: str, key: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(
            f"{url}/v1/jobs", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        response.raise_for_status()
        page = response.json()
        jobs.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return jobs


async def run(args: argparse.Namespace) -> int:
    # VTP_KEEP_TEST_DIR=1 keeps the folder (data dir and logs) for a look afterwards (Python 3.11 has no
    # TemporaryDirectory(delete=False)).
    with contextlib.ExitStack() as stack:
        tmp = tempfile.mkdtemp(prefix="vtp-chaos-")
        if os.environ.get("VTP_KEEP_TEST_DIR") != "1":
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        chaos = Chaos(Path(tmp), args)
        platform = await asyncio.to_thread(chaos.start)
        try:
            return await _run(chaos, platform, args)
        finally:
            if chaos.platform is not None:
                await asyncio.to_thread(chaos.platform.stop)


async def _run(chaos: Chaos, platform: LaunchedPlatform, args: argparse.Namespace) -> int:
    archive = make_imagefolder_archive(chaos.folder / "shapes.zip", classes=3, train_per_class=8)
    dataset = await asyncio.to_thread(upload_dataset, platform.url, platform.key, archive, "imagefolder")
    load = Load(platform.url, platform.key, dataset)
    async with httpx.AsyncClient() as client:
        training = [
            await load.submit(client, f"train-{i}", TRAINING, "local") for i in range(args.training_jobs)
        ]
    deadline = time.monotonic() + args.limit
    followers = [SseFollower(platform.url, platform.key, job_id) for job_id in training]
    follow = [asyncio.create_task(f.run_until(deadline)) for f in followers]
    spacing = args.clients / max(args.rate, 1)
    submitting = asyncio.create_task(load.run(args.submits, args.clients, spacing))

    for target in TARGETS:
        try:
            kill = await chaos.kill(target, load)
        except Exception as exc:  # the platform did not come back: report what was seen so far
            chaos.kills.append(Kill(target, killed=True, note=f"{type(exc).__name__}: {exc}"))
            submitting.cancel()
            for task in follow:
                task.cancel()
            return report(chaos, load, [], training, followers)
        chaos.kills.append(kill)
        recovery = f"{kill.recovery_s:.1f} s" if kill.recovery_s is not None else "-"
        say(f"killed {target}: {'yes' if kill.killed else 'no'}, recovered in {recovery} {kill.note}")
        await asyncio.sleep(args.pause)
    await submitting
    assert chaos.platform is not None
    url, key = chaos.platform.url, chaos.platform.key

    # Settle: the training jobs finish (retried after their kills), the rest stays QUEUED.
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            jobs = await all_jobs(client, url, key)
            states = {job["id"]: job["state"] for job in jobs}
            if all(states.get(job_id) in TERMINAL for job_id in training):
                break
            await asyncio.sleep(1)
        await asyncio.sleep(2)
        jobs = await all_jobs(client, url, key)
    await asyncio.gather(*follow)
    return report(chaos, load, jobs, training, followers)


def report(
    chaos: Chaos, load: Load, jobs: list[dict[str, Any]], training: list[str], followers: list[SseFollower]
) -> int:
    by_name = Counter(job["name"] for job in jobs)
    expected = {name: "QUEUED" for name in load.accepted if not name.startswith("train-")}
    lost = sorted(name for name in load.accepted if by_name[name] == 0)
    duplicated = sorted(name for name, count in by_name.items() if count > 1)
    state_of = {job["name"]: job["state"] for job in jobs}
    stuck = sorted(name for name, state in expected.items() if state_of.get(name, state) != state)
    stuck += [job["name"] for job in jobs if job["id"] in training and job["state"] not in TERMINAL]
    unhealthy_history = [job["name"] for job in jobs if job["name"] in expected and job["version"] != 2]
    sse_problems = []
    for follower in followers:
        versions = [version for _, version in follower.seen]
        if versions != list(range(1, len(versions) + 1)):
            sse_problems.append(f"{follower.job_id}: versions {versions}")
        ids = [event_id for event_id, _ in follower.seen]
        if len(ids) != len(set(ids)):
            sse_problems.append(f"{follower.job_id}: an event seen twice")
    print()
    print(f"{'part killed':<14} {'killed':<7} {'recovery':>10}  note")
    for kill in chaos.kills:
        recovery = f"{kill.recovery_s:.1f} s" if kill.recovery_s is not None else "-"
        print(f"{kill.target:<14} {'yes' if kill.killed else 'no':<7} {recovery:>10}  {kill.note}")
    print()
    training_states = Counter(job["state"] for job in jobs if job["id"] in training)
    print(
        f"accepted {len(load.accepted)}  lost {len(lost)}  duplicated {len(duplicated)}  stuck {len(stuck)}"
    )
    print(f"training jobs: {dict(training_states)}; failed submit tries: {dict(load.failures)}")
    reconnects = sum(f.reconnects for f in followers)
    print(f"SSE clients: {len(followers)}, reconnects {reconnects}, problems {len(sse_problems)}")
    for line in (lost[:5], duplicated[:5], stuck[:5], unhealthy_history[:5], sse_problems[:5]):
        if line:
            print(f"  e.g. {line}")
    not_killed = [kill.target for kill in chaos.kills if not kill.killed or kill.recovery_s is None]
    failed = lost or duplicated or stuck or unhealthy_history or sse_problems or not_killed
    failed = failed or any(kill.note for kill in chaos.kills if kill.target == "vtp-up")
    print("result:", "FAILED" if failed else "0 lost, 0 duplicated, 0 stuck")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submits", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=float, default=10.0, help="submits per second, all clients together")
    parser.add_argument("--training-jobs", type=int, default=3)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between kills")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds for the whole run")
    raise SystemExit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
