"""The local pool (`vtp serve pool`, `trainers.pool:main`): KEDA's ScaledJob on one machine.

Every poll it reads the lag of `pool-<pool>` from the NATS monitoring endpoint exactly as KEDA's
nats-jetstream scaler does, reaps finished runners, and starts `python -m trainers.runner` processes until
min(lag, concurrency) are running (never more than the concurrency). SIGINT/SIGTERM: stop starting, SIGTERM
the runners (they forward it to their trainers), wait, then kill what is left.
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
from dataclasses import dataclass

import httpx

from contracts import subjects
from services.common import nats as common_nats
from trainers import jsz, logs

log = logging.getLogger("trainers.pool")


@dataclass(frozen=True)
class PoolSettings:
    nats_url: str
    monitor_url: str
    pool: str
    concurrency: int
    poll_interval: float
    stop_timeout: float = 30.0

    @classmethod
    def from_environ(cls) -> PoolSettings:
        env = os.environ
        return cls(
            nats_url=env.get("NATS_URL", "nats://127.0.0.1:4222"),
            monitor_url=env.get("NATS_MONITOR_URL", "http://127.0.0.1:8222"),
            pool=env.get("VTP_POOL", "local"),
            concurrency=max(1, int(env.get("VTP_POOL_CONCURRENCY", "1"))),
            poll_interval=float(env.get("VTP_POOL_POLL_INTERVAL", "0.2")),
            stop_timeout=float(env.get("VTP_POOL_STOP_TIMEOUT", "30")),
        )


def runners_to_start(lag: int, running: int, concurrency: int) -> int:
    """Pure scaling rule: enough runners for the lag, capped by the concurrency."""
    return max(0, min(lag, concurrency) - running)


async def _prepare(settings: PoolSettings) -> None:
    nc = await common_nats.connect(settings.nats_url, name=f"vtp-pool-{settings.pool}")
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
        self.stopping = threading.Event()

    def runner_environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"NATS_URL": self.settings.nats_url, "VTP_POOL": self.settings.pool})
        return env

    def reap(self) -> None:
        for runner in [r for r in self.runners if r.poll() is not None]:
            log.info("runner %d exited with %d", runner.pid, runner.returncode)
            self.runners.remove(runner)

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
            return 0
        count = runners_to_start(lag, len(self.runners), self.settings.concurrency)
        for _ in range(count):
            runner = subprocess.Popen([sys.executable, "-m", "trainers.runner"], env=self.runner_environ())
            log.info("lag %d: started runner %d", lag, runner.pid)
            self.runners.append(runner)
        return count

    def serve(self) -> None:
        asyncio.run(_prepare(self.settings))
        log.info("pool %s: concurrency %d", self.settings.pool, self.settings.concurrency)
        with httpx.Client() as client:
            while not self.stopping.is_set():
                self.poll_once(client)
                self.stopping.wait(self.settings.poll_interval)
        self.stop_runners()

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


def main() -> None:
    logs.configure()
    pool = Pool(PoolSettings.from_environ())
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: pool.stopping.set())
    pool.serve()


if __name__ == "__main__":
    main()
