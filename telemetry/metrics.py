"""Every Prometheus metric the platform exports, in one place, and the small HTTP endpoint of the parts that
have no HTTP port of their own (scheduler, pool): `/metrics`, `/healthz` (liveness), `/readyz` (readiness).

Each part exports the metrics it owns (named in each one's help) plus prometheus-client's process and
Python metrics. All of them live in the process: counters and histograms start from zero when the part
restarts (Prometheus' `rate()` and `increase()` handle the reset); gauges are read from the state they
describe (`vtp_pool_queue_depth` from the scheduler's table, `vtp_pool_runners` from the pool's runners,
`vtp_sse_clients` from the api's open streams), so they are right again after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

log = logging.getLogger(__name__)

# Seconds: a job waits from well under a second (a warm pool) to hours (a GPU pool scaled to zero).
_WAIT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 48 * 3600)
_EPOCH_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

# api
JOBS_SUBMITTED = Counter(
    "vtp_jobs_submitted", "Jobs accepted by the api (a retry with the same idempotency key counts once)",
    ["framework", "pool"],
)  # fmt: skip
SSE_CLIENTS = Gauge("vtp_sse_clients", "Server-sent event streams open on this api process")

# scheduler
JOBS_FINISHED = Counter(
    "vtp_jobs_finished", "Jobs that reached a terminal state (scheduler)", ["state", "framework", "pool"]
)
JOB_QUEUE_SECONDS = Histogram(
    "vtp_job_queue_seconds", "Time from QUEUED to RUNNING, per attempt (scheduler)", ["framework", "pool"],
    buckets=_WAIT_BUCKETS,
)  # fmt: skip
JOB_RUN_SECONDS = Histogram(
    "vtp_job_run_seconds", "Time from RUNNING to the attempt's end (scheduler)", ["framework", "pool"],
    buckets=_WAIT_BUCKETS,
)  # fmt: skip
JOB_RETRIES = Counter(
    "vtp_job_retries", "Attempts retried, by why the last one ended (scheduler)", ["reason"]
)
HEARTBEAT_TIMEOUTS = Counter("vtp_heartbeat_timeouts", "Attempts ended for a missing heartbeat (scheduler)")
JOB_PREEMPTIONS = Counter(
    "vtp_job_preemptions", "Runs preempted and queued again at the same attempt (scheduler)", ["pool"]
)
POOL_QUEUE_DEPTH = Gauge("vtp_pool_queue_depth", "Jobs QUEUED per pool (scheduler)", ["pool"])
SCHEDULER_INPUTS = Counter(
    "vtp_scheduler_inputs",
    "Inputs the scheduler took: applied, rejected (illegal now), redelivered (already recorded), refused"
    " (can never be stored or read), deferred (the job not known yet)",
    ["kind", "outcome"],
)
EPOCH_SECONDS = Histogram(
    "vtp_epoch_seconds", "One training epoch, as its trainer timed it (scheduler)", ["framework"],
    buckets=_EPOCH_BUCKETS,
)  # fmt: skip

# events
CALLBACKS = Counter("vtp_callbacks", "Trainer callbacks answered (events service)", ["kind", "code"])

# pool
POOL_RUNNERS = Gauge("vtp_pool_runners", "Runners (one per job taken) running now (pool)", ["pool"])


class PoolDepths:
    """`vtp_pool_queue_depth` from a full count: pools seen before and now empty go back to 0."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def update(self, counts: dict[str, int]) -> None:
        for pool in self._seen - set(counts):
            POOL_QUEUE_DEPTH.labels(pool=pool).set(0)
        for pool, count in counts.items():
            POOL_QUEUE_DEPTH.labels(pool=pool).set(count)
        self._seen |= set(counts)


class Health:
    """What the probes ask. Live while the part's loop turns (it calls `beat`, or runs `beat_forever` on its
    event loop): a loop blocked or wedged for `stall_seconds` is not live, so the kubelet restarts the
    process. Ready while live and no dependency is marked down."""

    def __init__(self, stall_seconds: float = 30.0) -> None:
        self.stall_seconds = stall_seconds
        self._last_beat = time.monotonic()
        self._down: dict[str, str] = {}

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    async def beat_forever(self, interval: float = 1.0) -> None:
        while True:
            self.beat()
            await asyncio.sleep(interval)

    def live(self) -> tuple[bool, str]:
        stalled = time.monotonic() - self._last_beat
        if stalled > self.stall_seconds:
            return False, f"event loop stalled for {stalled:.0f} s"
        return True, "ok"

    def set_down(self, dependency: str, why: str | None) -> None:
        """Mark `dependency` down (with why) or, with `why=None`, up again."""
        if why is None:
            self._down.pop(dependency, None)
        else:
            self._down[dependency] = why

    def ready(self) -> tuple[bool, str]:
        live = self.live()
        if not live[0]:
            return live
        if self._down:
            return False, "; ".join(f"{name} down: {why}" for name, why in sorted(self._down.items()))
        return True, "ready"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes and scrapes every few seconds: not worth a log line each."""


def _health_app(health: Health) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            ok, text = health.live() if path == "/healthz" else health.ready()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [text.encode() + b"\n"]
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics, /healthz or /readyz\n"]

    return app


def serve(port: int, health: Health, host: str = "0.0.0.0") -> ThreadingWSGIServer:
    """Serve `/metrics`, `/healthz` and `/readyz` on `port` from a thread of its own (so a wedged event loop
    still answers "not live"); `shutdown()` the returned server to stop."""
    server = make_server(host, port, _health_app(health), ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics and health on port %d", server.server_port)
    return server
