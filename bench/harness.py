"""What the benchmarks share: a platform of their own (nats-server, Postgres and `vtp up` in a temporary
folder), READY datasets, and the job events as they appear on NATS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from contracts import subjects
from messaging.nats import connect
from vtp.embedded.nats_server import NatsServer, start_nats_server
from vtp.embedded.ports import free_port
from vtp.embedded.postgres import start_postgres
from vtp.launch import LaunchedPlatform, launch
from vtp.up import stop_postgres


@dataclass
class BenchSetup:
    folder: Path
    nats: NatsServer
    database_url: str
    platform: LaunchedPlatform | None = None

    def launch(self, extra_env: Mapping[str, str] | None = None) -> LaunchedPlatform:
        """Start `vtp up` on this nats-server and Postgres (its log: `vtp-up.log` in the folder), with
        `extra_env` added to this process's environment."""
        env = {
            **os.environ,
            **(extra_env or {}),
            "NATS_URL": self.nats.url,
            "NATS_MONITOR_URL": self.nats.monitor_url,
            "DATABASE_URL": self.database_url,
        }
        self.platform = launch(self.folder / "platform", free_port(), env, self.folder / "vtp-up.log", 120)
        return self.platform


@contextlib.contextmanager
def bench_setup() -> Iterator[BenchSetup]:
    """nats-server and Postgres in a temporary folder; `launch()` then starts the platform on them. All of it
    stops on the way out."""
    with tempfile.TemporaryDirectory(prefix="vtp-bench-") as tmp:
        folder = Path(tmp)
        nats = start_nats_server(folder / "nats")
        setup = BenchSetup(folder, nats, start_postgres(folder / "pg"))
        try:
            yield setup
        finally:
            if setup.platform is not None:
                setup.platform.stop()
            nats.stop()
            stop_postgres(folder / "pg")  # now: at exit, its data folder would be gone already


def upload_dataset(url: str, key: str, archive: Path, dataset_format: str) -> str:
    """Upload `archive` and wait for its validation job (on the platform's local pool): jobs train only on
    READY datasets. Returns the dataset's id."""
    headers = {"Authorization": f"Bearer {key}"}
    with archive.open("rb") as file:
        response = httpx.post(
            f"{url}/v1/datasets",
            headers=headers,
            data={"name": archive.stem, "format": dataset_format},
            files={"file": (archive.name, file, "application/zip")},
            timeout=30,
        )
    response.raise_for_status()
    dataset = response.json()
    deadline = time.monotonic() + 60
    while dataset["status"] == "VALIDATING" and time.monotonic() < deadline:
        time.sleep(0.2)
        dataset = httpx.get(f"{url}/v1/datasets/{dataset['id']}", headers=headers, timeout=10).json()
    if dataset["status"] != "READY":
        raise RuntimeError(f"the benchmark dataset is {dataset['status']}: {dataset}")
    return str(dataset["id"])


class EventWatch:
    """Times when each job's events appear (core NATS subscription on the event subjects): the first of each
    type in `seen`, every one in order in `history`."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, float]] = {}
        self.history: dict[str, list[tuple[str, float]]] = {}

    async def start(self, nats_url: str) -> None:
        self.nc = await connect(nats_url, "bench-watch")

        async def on_event(msg) -> None:  # type: ignore[no-untyped-def]
            now = time.perf_counter()
            _, _, _, job_id, kind = msg.subject.split(".", 4)
            self.seen.setdefault(kind, {}).setdefault(job_id, now)
            self.history.setdefault(job_id, []).append((kind, now))

        await self.nc.subscribe(subjects.EVENTS_ALL, cb=on_event)

    def count(self, kind: str, job_ids: set[str]) -> int:
        return len(job_ids & self.seen.get(kind, {}).keys())

    async def wait_for(self, kind: str, job_ids: set[str], limit_s: float) -> float:
        deadline = time.perf_counter() + limit_s
        while self.count(kind, job_ids) < len(job_ids):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{self.count(kind, job_ids)}/{len(job_ids)} jobs reached {kind}")
            await asyncio.sleep(0.02)
        return max(self.seen[kind][job_id] for job_id in job_ids)

    async def stop(self) -> None:
        await self.nc.close()
