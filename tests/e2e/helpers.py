"""Helpers for the end-to-end tests: the platform handle, uploads, job requests, a small SSE reader."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from vtp.client import SseEvent, parse_sse
from vtp.launch import LaunchedPlatform

# Short timers so retries and heartbeat timeouts happen within a test.
FAST_TIMERS = {
    "VTP_HEARTBEAT_INTERVAL": "1",
    "VTP_HEARTBEAT_TIMEOUT": "6",
    "VTP_RETRY_BACKOFF_BASE": "1",
    "VTP_RETRY_BACKOFF_MAX": "2",
    "VTP_TICK_INTERVAL": "0.5",
    "VTP_POOL_POLL_INTERVAL": "0.2",
    "VTP_POOL_CONCURRENCY": "2",
}


# Archives may unpack to 16 MiB here (20 GiB by default), so a size bomb stays small. Every other e2e dataset
# is far below it.
SMALL_VALIDATION_LIMITS = {"VTP_VALIDATION_MAX_BYTES": str(16 * 1024 * 1024)}


@dataclass
class Platform(LaunchedPlatform):
    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key or self.key}"}, timeout=30
        )


def upload_dataset(platform: Platform, archive: Path, dataset_format: str) -> str:
    """Upload an archive as a dataset and wait until its validation made it READY; its id."""
    with platform.client() as client, archive.open("rb") as file:
        response = client.post(
            "/v1/datasets",
            data={"name": archive.stem, "format": dataset_format},
            files={"file": (archive.name, file, "application/zip")},
        )
        assert response.status_code in (200, 201), response.text
        dataset = validated(client, response.json())
    assert dataset["status"] == "READY", dataset
    return str(dataset["id"])


def validated(client: httpx.Client, dataset: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """The dataset once its validation job has ended."""
    deadline = time.monotonic() + timeout
    while dataset["status"] == "VALIDATING":
        assert time.monotonic() < deadline, f"dataset {dataset['id']} still VALIDATING after {timeout:.0f} s"
        time.sleep(0.2)
        dataset = client.get(f"/v1/datasets/{dataset['id']}").json()
    return dataset


def declare_pool(data_dir: Path, pool: str) -> None:
    """`vtp pools prepare POOL` on the nats-server of the `vtp up` running on `data_dir` (as an operator
    declares a pool no runner serves yet): jobs may name only declared pools."""
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "NATS_USER", "NATS_PASSWORD")}
    command = [sys.executable, "-m", "vtp.cli", "--data-dir", str(data_dir), "pools", "prepare", pool]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)


def submit(platform: Platform, body: dict, key: str | None = None) -> dict:
    with platform.client() as client:
        response = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key} if key else {})
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_for_state(platform: Platform, job_id: str, states: set[str], timeout: float = 240) -> dict[str, Any]:
    """The job, once it is in one of `states` (polling `GET /v1/jobs/{id}`)."""
    deadline = time.monotonic() + timeout
    with platform.client() as client:
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] in states:
                return dict(job)
            assert time.monotonic() < deadline, f"job {job_id} still {job['state']} after {timeout:.0f} s"
            time.sleep(0.3)


def job_request(dataset: str, epochs: int = 2, **overrides: Any) -> dict[str, Any]:
    return {
        "framework": "timm",
        "task": "classify",
        "model": "resnet18",
        "dataset": dataset,
        "pool": "local",
        "hyperparameters": {"epochs": epochs, "batch_size": 8, "image_size": 64, "learning_rate": 0.001},
        **overrides,
    }


def sse_events(
    client: httpx.Client, path: str, last_event_id: str | None = None, timeout: float = 120
) -> Iterator[SseEvent]:
    """Yield parsed server-sent events until the server closes the stream."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    with client.stream("GET", path, headers=headers, timeout=httpx.Timeout(timeout)) as response:
        assert response.status_code == 200, response.read()
        yield from parse_sse(response.iter_lines())


def trainer_processes(job_id: str, attempt: int, framework: str = "timm") -> list[psutil.Process]:
    """The trainer processes (`python -m trainers.<framework>`) of one attempt of a job."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if f"trainers.{framework}" not in " ".join(process.info["cmdline"] or []):
                continue
            environ = process.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if environ.get("VTP_JOB_ID") == job_id and environ.get("VTP_ATTEMPT") == str(attempt):
            found.append(process)
    return found


def wait_for_trainer(
    job_id: str, attempt: int, framework: str = "timm", timeout: float = 60
) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if processes := trainer_processes(job_id, attempt, framework):
            return processes[0]
        time.sleep(0.1)
    raise AssertionError(f"no trainer process for job {job_id} attempt {attempt}")
