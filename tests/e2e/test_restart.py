"""`vtp up` on its own (embedded nats-server and Postgres in the data dir): stopping and starting again on the
same data dir keeps every job, event and dataset, and the same API key works."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from tests.e2e.helpers import job_request, sse_events, validated
from vtp.embedded.ports import free_port
from vtp.launch import LaunchedPlatform, launch


def start(data_dir: Path, port: int, log: Path) -> LaunchedPlatform:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "NATS_MONITOR_URL", "DATABASE_URL")}
    return launch(data_dir, port, env, log)


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
        job = client.post("/v1/jobs", json=job_request(dataset, pool="nobody-serves-this")).json()
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job['id']}").json()["state"] != "QUEUED":
            assert time.monotonic() < deadline, "job never reached QUEUED"
            time.sleep(0.1)
    finally:
        assert platform.stop() == 0

    platform = start(data_dir, port, log)
    try:
        assert platform.key == key
        client = httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {key}"})
        assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "QUEUED"
        assert client.get(f"/v1/datasets/{dataset}").status_code == 200
        assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
        events = [event.event for event in sse_events(client, f"/v1/jobs/{job['id']}/events", timeout=30)]
        assert events == ["job.submitted", "job.queued", "job.cancelled"]
    finally:
        assert platform.stop() == 0
