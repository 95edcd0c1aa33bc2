"""`vtp up` on its own (embedded nats-server and Postgres in the data dir): stopping and starting again on the
same data dir keeps every job, event and dataset, and the same API key works."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from contracts import subjects
from contracts.dispatch import DispatchJob
from messaging.nats import connect
from messaging.permissions import ADMIN
from tests.e2e.helpers import declare_pool, job_request, sse_events, validated
from vtp.embedded.ports import free_port
from vtp.launch import LaunchedPlatform, launch
from vtp.nats_auth import NatsUsers


def start(data_dir: Path, port: int, log: Path) -> LaunchedPlatform:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "NATS_MONITOR_URL", "DATABASE_URL")}
    return launch(data_dir, port, env, log)


def dispatched_callback_url(data_dir: Path, pool: str) -> str:
    """The callback URL in the pool's last dispatch message, read as the admin of the data dir's NATS."""
    config = (data_dir / "nats" / "nats-server.conf").read_text()
    listen = re.search(r"^listen: (\S+)$", config, re.MULTILINE)
    assert listen is not None
    users = NatsUsers.ensure(data_dir / "secrets" / "nats", [])

    async def read() -> str:
        nc = await connect(f"nats://{listen.group(1)}", "test-restart", users.credentials(ADMIN))
        try:
            stored = await nc.jetstream().get_last_msg(
                subjects.DISPATCH_STREAM, subjects.dispatch_subject(pool)
            )
            return DispatchJob.model_validate_json(stored.data).callback_url
        finally:
            await nc.close()

    return asyncio.run(read())


def test_restart_on_the_same_data_dir_keeps_jobs_events_and_key(session_dir: Path) -> None:
    from vtp.synthetic import make_imagefolder_archive

    data_dir, port, log = session_dir / "restart", free_port(), session_dir / "restart.log"
    archive = make_imagefolder_archive(session_dir / "restart-shapes.zip", train_per_class=2, val_per_class=1)

    platform = start(data_dir, port, log)
    try:
        key = platform.key
        client = httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {key}"})
        with archive.open("rb") as file:
            uploaded = client.post(
                "/v1/datasets", data={"name": "r", "format": "imagefolder"}, files={"file": ("r.zip", file)}
            ).json()
        dataset = validated(client, uploaded)["id"]
        # A pool nobody serves: the job waits QUEUED across the restart.
        declare_pool(data_dir, "nobody-serves-this")
        listed = subprocess.run(
            [sys.executable, "-m", "vtp.cli", "--data-dir", str(data_dir), "pools", "list"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        assert {"local", "nobody-serves-this"} <= {line.split()[0] for line in listed.splitlines()[1:]}
        job = client.post("/v1/jobs", json=job_request(dataset, pool="nobody-serves-this")).json()
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job['id']}").json()["state"] != "QUEUED":
            assert time.monotonic() < deadline, "job never reached QUEUED"
            time.sleep(0.1)
        callback_url = dispatched_callback_url(data_dir, "nobody-serves-this")
    finally:
        assert platform.stop() == 0

    platform = start(data_dir, port, log)
    try:
        assert platform.key == key
        client = httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {key}"})
        assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "QUEUED"
        assert client.get(f"/v1/datasets/{dataset}").status_code == 200
        # The events service is where the queued job's dispatch tells its runner to call.
        assert httpx.get(f"{callback_url.split('/v1/', 1)[0]}/healthz", timeout=5).status_code == 200
        assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
        events = [event.event for event in sse_events(client, f"/v1/jobs/{job['id']}/events", timeout=30)]
        assert events == ["job.submitted", "job.queued", "job.cancelled"]
    finally:
        assert platform.stop() == 0
