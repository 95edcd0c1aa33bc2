"""The local pool (`vtp serve pool`, `trainers.pool:main`): KEDA's ScaledJob on one machine.

Every poll it reads the lag of `pool-<pool>` from the NATS monitoring endpoint exactly as KEDA's
nats-jetstream scaler does, reaps finished runners, and starts `python -m trainers.runner` processes until
min(lag, concurrency) are running (never more than the concurrency). SIGINT/SIGTERM: stop starting, SIGTERM
the runners (they forward it to their trainers), wait, then kill what is left.

A runner gets only what a runner reads (`runner_environ`): no DATABASE_URL, storage or signing key, whatever
the pool's own environment holds. Its NATS credentials go down its stdin pipe (`VTP_NATS_CREDENTIALS=-`),
which its trainer cannot read (trainers/isolation.py). As root, each runner slot starts its trainer as a
uid of its own (`VTP_TRAINER_UID_BASE` + slot), so two trainers running at once cannot read each other.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from opentelemetry.context import Context

from contracts import subjects
from messaging import nats as common_nats
from messaging.credentials import NatsCredentials
from telemetry import logs, metrics, tracing
from trainers import isolation, jsz
from trainers.lifetime import dies_with_parent
from trainers.preemption import grace_from_environ
from trainers.runner import RUNNER_VARIABLES, passed_to_trainer

log = logging.getLogger("trainers.pool")

# Trainer uids of a root pool's runner slots: 65000-65533, reserved and unused on Debian-like systems,
# and inside the 65536 uids a container's user namespace maps.
TRAINER_UID_BASE = 65000
POOL_VARIABLES = (
    "NATS_URL", "NATS_MONITOR_URL", "VTP_POOL", "VTP_TRAINER_UID_BASE", isolation.CREDENTIALS,
    "NATS_USER", "NATS_PASSWORD", "VTP_METRICS_PORT", "VTP_METRICS_HOST",
)  # fmt: skip


@dataclass(frozen=True)
class PoolSettings:
    nats_url: str
    monitor_url: str
    pool: str
    concurrency: int
    poll_interval: float
    stop_timeout: float = 30.0
    credentials: NatsCredentials | None = None
    trainer_uid_base: int = TRAINER_UID_BASE
    # `/metrics`, `/healthz` and `/readyz` (telemetry/metrics.py); None: not served.
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"

    @classmethod
    def from_environ(cls) -> PoolSettings:
        env = os.environ
        return cls(
            nats_url=env.get("NATS_URL", "nats://127.0.0.1:4222"),
            monitor_url=env.get("NATS_MONITOR_URL", "http://127.0.0.1:8222"),
            pool=env.get("VTP_POOL", "local"),
            concurrency=max(1, int(env.get("VTP_POOL_CONCURRENCY", "1"))),
            poll_interval=float(env.get("VTP_POOL_POLL_INTERVAL", "0.2")),
            # Its runners' trainers may take their preemption grace to save a checkpoint, and then report.
            stop_timeout=float(env.get("VTP_POOL_STOP_TIMEOUT", str(grace_from_environ(env) + 10))),
            credentials=isolation.read_credentials(env),
            trainer_uid_base=int(env.get("VTP_TRAINER_UID_BASE", str(TRAINER_UID_BASE))),
            metrics_port=int(env["VTP_METRICS_PORT"]) if env.get("VTP_METRICS_PORT") else None,
            metrics_host=env.get("VTP_METRICS_HOST", "0.0.0.0"),
        )


def pool_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a pool needs from whoever starts it (`vtp up`): its own settings, its runners' and
    the trainers' (`runner_environ`), its NATS user; never a database URL, storage or signing key."""
    return {
        name: value
        for name, value in environ.items()
        if name in POOL_VARIABLES or name.startswith("VTP_POOL_") or _runner_reads(name)
    }


def _runner_reads(name: str) -> bool:
    # OTEL_*: the runner's own export (its headers included, which its trainer does not get).
    return name in RUNNER_VARIABLES or name.startswith("OTEL_") or passed_to_trainer(name)


def runners_to_start(lag: int, running: int, concurrency: int) -> int:
    """Pure scaling rule: enough runners for the lag, capped by the concurrency."""
    return max(0, min(lag, concurrency) - running)


async def _prepare(settings: PoolSettings) -> None:
    nc = await common_nats.connect(
        settings.nats_url, name=f"vtp-pool-{settings.pool}", credentials=settings.credentials
    )
    try:
        js = nc.jetstream()
        await common_nats.ensure_streams(js)
        await common_nats.ensure_pool_consumer(js, settings.pool)
    finally:
        await nc.drain()


class Pool:
    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.runners: list[subprocess.Popen[bytes]] = []
        self.slots: dict[int, int] = {}  # runner pid -> its slot (which trainer uid it uses)
        self.stopping = threading.Event()
        self.health = metrics.Health()
        self._runners_gauge = metrics.POOL_RUNNERS.labels(pool=settings.pool)

    def runner_environ(self, slot: int = 0, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """What a runner reads, and its trainer's settings; its NATS credentials come on its stdin."""
        parent = os.environ if environ is None else environ
        env = {name: value for name, value in parent.items() if _runner_reads(name)}
        env.update({"NATS_URL": self.settings.nats_url, "VTP_POOL": self.settings.pool})
        if traceparent := tracing.traceparent():  # the pool's span that starts it, when tracing is on
            env["TRACEPARENT"] = traceparent
        if isolation.credentials_text(self._credentials()):
            env[isolation.CREDENTIALS] = isolation.STDIN
        if os.geteuid() == 0 and "VTP_TRAINER_USER" not in env:
            env["VTP_TRAINER_USER"] = str(self.settings.trainer_uid_base + slot)
        return env

    def _credentials(self) -> NatsCredentials:
        return self.settings.credentials or NatsCredentials()

    def _free_slot(self) -> int:
        return min(set(range(len(self.runners) + 1)) - set(self.slots.values()))

    def start_runner(self) -> subprocess.Popen[bytes]:
        slot = self._free_slot()
        runner = subprocess.Popen(
            [sys.executable, "-m", "trainers.runner"],
            env=self.runner_environ(slot),
            stdin=subprocess.PIPE,
            preexec_fn=dies_with_parent(),
        )
        assert runner.stdin is not None
        try:
            runner.stdin.write(isolation.credentials_text(self._credentials()).encode())
            runner.stdin.close()
        except BrokenPipeError:  # it died at once; reaped like any other
            pass
        self.slots[runner.pid] = slot
        return runner

    def reap(self) -> None:
        for runner in [r for r in self.runners if r.poll() is not None]:
            log.info("runner %d exited with %d", runner.pid, runner.returncode)
            self.runners.remove(runner)
            self.slots.pop(runner.pid, None)
        self._runners_gauge.set(len(self.runners))

    def poll_once(self, client: httpx.Client) -> int:
        """One scaling step; returns how many runners it started."""
        self.reap()
        try:
            lag = jsz.read_lag(
                client,
                self.settings.monitor_url,
                subjects.DISPATCH_STREAM,
                subjects.pool_consumer(self.settings.pool),
            )
        except (httpx.HTTPError, jsz.ConsumerNotFound, ValueError) as exc:
            log.warning("reading the lag of pool %s failed: %s", self.settings.pool, exc)
            self.health.set_down("nats monitoring", str(exc)[:200])
            return 0
        self.health.set_down("nats monitoring", None)
        count = runners_to_start(lag, len(self.runners), self.settings.concurrency)
        for _ in range(count):
            # A trace of its own (the pool cannot know which job the runner will take): the runner's span
            # links to it.
            attributes = {"vtp.pool": self.settings.pool, "vtp.lag": lag}
            with tracing.span("start runner", Context(), attributes=attributes) as span:
                runner = self.start_runner()
                span.set_attribute("vtp.runner_pid", runner.pid)
            log.info("lag %d: started runner %d", lag, runner.pid)
            self.runners.append(runner)
        self._runners_gauge.set(len(self.runners))
        return count

    def serve(self) -> None:
        server = None
        if self.settings.metrics_port is not None:
            server = metrics.serve(self.settings.metrics_port, self.health, self.settings.metrics_host)
        asyncio.run(_prepare(self.settings))
        log.info("pool %s: concurrency %d", self.settings.pool, self.settings.concurrency)
        with httpx.Client() as client:
            while not self.stopping.is_set():
                self.health.beat()
                self.poll_once(client)
                self.stopping.wait(self.settings.poll_interval)
        self.stop_runners()
        if server is not None:
            server.shutdown()

    def stop_runners(self) -> None:
        for runner in self.runners:
            if runner.poll() is None:
                runner.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.stop_timeout
        for runner in self.runners:
            try:
                runner.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("runner %d did not stop in time; killing it", runner.pid)
                runner.kill()
                runner.wait()
        self.runners.clear()
        self.slots.clear()


def main() -> None:
    isolation.not_dumpable()
    logs.configure("vtp-pool")
    tracing.configure("vtp-pool", pool=os.environ.get("VTP_POOL", "local"))
    pool = Pool(PoolSettings.from_environ())
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: pool.stopping.set())
    pool.serve()


if __name__ == "__main__":
    main()
