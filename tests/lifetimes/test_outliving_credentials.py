"""A job never strands: one queued longer than its dispatch's credentials live gets new ones when a runner
takes it, one running longer has its token renewed by its heartbeats, and one that no runner takes fails
after its queue timeout with the reason."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import datetime

from messaging import nats as common_nats
from tests.e2e.helpers import Platform, job_request, sse_events, submit, wait_for_state
from tests.lifetimes.conftest import TOKEN_TTL
from vtp.embedded.nats_server import NatsServer


def event_times(platform: Platform, job_id: str) -> dict[str, datetime]:
    """When each of the (ended) job's events happened, the first of each type."""
    times: dict[str, datetime] = {}
    with platform.client() as client:
        for event in sse_events(client, f"/v1/jobs/{job_id}/events"):
            times.setdefault(event.event, datetime.fromisoformat(event.data["time"]))
    return times


def declare_pool(lifetimes_nats: NatsServer, pool: str) -> None:
    """The pool's dispatch consumer, as `vtp pools prepare` makes it: a declared pool no runner serves yet."""

    async def declare() -> None:
        nc = await common_nats.connect(lifetimes_nats.url, "lifetimes-tests")
        try:
            await common_nats.ensure_pool_consumer(nc.jetstream(), pool)
        finally:
            await nc.close()

    asyncio.run(declare())


def run_one_runner(lifetimes_nats: NatsServer, pool: str) -> subprocess.CompletedProcess[str]:
    """What KEDA would start for the pool, at last: one runner, one job."""
    env = {
        **os.environ,
        "NATS_URL": lifetimes_nats.url,
        "VTP_POOL": pool,
        "VTP_HEARTBEAT_INTERVAL": "1",
        "VTP_LOG_FORMAT": "text",
    }
    command = [sys.executable, "-m", "trainers.runner"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, check=False)


def test_a_job_queued_and_run_past_its_token_lifetime_succeeds_at_its_first_attempt(
    platform: Platform, dataset_id: str, lifetimes_nats: NatsServer
) -> None:
    declare_pool(lifetimes_nats, "late")
    job = submit(platform, job_request(dataset_id, epochs=16, pool="late"))
    time.sleep(TOKEN_TTL + 1)  # the dispatch's token and signed URLs are expired now

    finished = run_one_runner(lifetimes_nats, "late")

    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-3000:]
    done = wait_for_state(platform, job["id"], {"SUCCEEDED", "FAILED", "CANCELLED"})
    assert (done["state"], done["attempt"]) == ("SUCCEEDED", 1), done
    assert "callback token renewed" in output  # by a heartbeat's answer, while it ran
    with platform.client() as client:
        logs = client.get(f"/v1/jobs/{job['id']}/logs").text
    assert "epoch" in logs
    assert "could not be delivered" not in logs  # the runner's own token (its output's) was renewed too
    times = event_times(platform, job["id"])
    assert (times["job.running"] - times["job.queued"]).total_seconds() > TOKEN_TTL
    assert (times["job.succeeded"] - times["job.running"]).total_seconds() > TOKEN_TTL, (
        "the run must outlast the token it started with to show the renewal"
    )


def test_a_job_no_runner_takes_fails_after_its_queue_timeout(
    platform: Platform, dataset_id: str, lifetimes_nats: NatsServer
) -> None:
    declare_pool(lifetimes_nats, "nobody")
    job = submit(platform, job_request(dataset_id, pool="nobody", queue_timeout=2))

    failed = wait_for_state(platform, job["id"], {"FAILED", "SUCCEEDED", "CANCELLED"}, timeout=30)

    assert (failed["state"], failed["attempt"]) == ("FAILED", 1)
    assert failed["reason"] == "no runner took it within 2 s (queue timeout)", failed
