"""The api service on a real uvicorn server (in a thread) over the session's real nats-server and Postgres.

No scheduler runs here: tests play its part by publishing JobEvents to VTP_EVENTS themselves.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import uvicorn
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from contracts import subjects
from contracts.events import JobEvent
from contracts.jobs import EventType, JobState
from messaging.nats import prepare
from services.api.app import create_app
from services.api.keys import create_project
from services.api.settings import ApiSettings
from services.common.db import upgrade
from vtp.embedded.nats_server import NatsServer
from vtp.embedded.ports import free_port

MAX_DATASET_BYTES = 256 * 1024


@dataclass
class ApiServer:
    url: str
    settings: ApiSettings


@pytest.fixture(scope="package")
def api_server(session_dir: Path, nats_server: NatsServer, postgres_url: str) -> Iterator[ApiServer]:
    upgrade("api", postgres_url)
    # A job may name only a declared pool: the tests' idle one, and `local` (the default).
    asyncio.run(prepare(nats_server.url, [IDLE_POOL, "local"]))
    settings = ApiSettings(
        nats_url=nats_server.url,
        database_url=postgres_url,
        data_dir=session_dir / "api",
        max_dataset_bytes=MAX_DATASET_BYTES,
        sse_keepalive_seconds=1.0,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the api server did not start")
        time.sleep(0.02)
    yield ApiServer(url=f"http://127.0.0.1:{port}", settings=settings)
    server.should_exit = True
    thread.join(15)


@dataclass
class Project:
    id: str
    key: str
    client: httpx.AsyncClient


@pytest.fixture
async def project(api_server: ApiServer, postgres_url: str) -> AsyncIterator[Project]:
    """A fresh project per test, so tests never see each other's jobs."""
    project_id, key = await create_project(postgres_url, f"test-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(
        base_url=api_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        yield Project(project_id, key, client)


@pytest.fixture
async def other_project(api_server: ApiServer, postgres_url: str) -> AsyncIterator[Project]:
    project_id, key = await create_project(postgres_url, f"other-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(
        base_url=api_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        yield Project(project_id, key, client)


# Package scope: a connection kept open through other packages' long synchronous tests (the event loop
# idle, no answer to the server's pings) is dropped by the server, and its teardown fails.
@pytest.fixture(scope="package")
async def nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    connection = await nats.connect(nats_server.url)
    yield connection
    await connection.drain()


@pytest.fixture(scope="package")
def js(nc: NATS) -> JetStreamContext:
    return nc.jetstream()


def imagefolder_zip(splits: tuple[str, ...] = ("train", "val"), root: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for split in splits:
            for label in ("circle", "square"):
                # A fixed date: the same call makes the same bytes, whichever second it runs in.
                entry = zipfile.ZipInfo(f"{root}{split}/{label}/0.png", date_time=(2026, 1, 1, 0, 0, 0))
                archive.writestr(entry, b"\x89PNG fake image")
    return buffer.getvalue()


async def upload_dataset(
    client: httpx.AsyncClient, content: bytes | None = None, **fields: Any
) -> httpx.Response:
    data = {"name": "shapes", "format": "imagefolder", **fields}
    files = {"file": ("shapes.zip", content if content is not None else imagefolder_zip(), "application/zip")}
    return await client.post("/v1/datasets", data=data, files=files)


@pytest.fixture
async def dataset(project: Project, js: JetStreamContext) -> str:
    response = await upload_dataset(project.client)
    assert response.status_code == 201, response.text
    return str((await validated(js, project, response.json()))["id"])


@pytest.fixture
async def yolo_dataset(project: Project, tmp_path: Path, js: JetStreamContext) -> str:
    from vtp.synthetic import make_yolo_detect_archive

    archive = make_yolo_detect_archive(tmp_path, train=2, val=1, size=32)
    response = await upload_dataset(project.client, archive.read_bytes(), format="yolo-detect")
    assert response.status_code == 201, response.text
    return str((await validated(js, project, response.json()))["id"])


READY = {
    "status": "READY",
    "content_hash": "sha256:" + "ab" * 32,
    "summary": {"classes": ["circle", "square"], "splits": {"train": {"images": 2}, "val": {"images": 2}}},
    "problems": [],
    "problem_count": 0,
}


async def validated(
    js: JetStreamContext, project: Project, dataset: dict[str, Any], failed: str | None = None, **verdict: Any
) -> dict[str, Any]:
    """Play the scheduler for the dataset's validation job: it succeeds with the verdict (`READY` changed by
    `verdict`) as its metrics, or fails with the reason `failed`. The dataset once the api has followed."""
    job = {"id": dataset["validation_job_id"], "trace_id": "1" * 32, "name": f"validate {dataset['name']}"}
    validation = Scheduler(js, job, project.id)
    spec = {"framework": "validation", "task": "validate", "model": "dataset", "limits": {}}
    await validation.emit(EventType.SUBMITTED, JobState.PENDING, name=job["name"], spec=spec, pool="local")
    await validation.emit(EventType.QUEUED, JobState.QUEUED, pool="local")
    await validation.emit(EventType.RUNNING, JobState.RUNNING)
    if failed is None:
        await validation.emit(EventType.SUCCEEDED, JobState.SUCCEEDED, metrics={**READY, **verdict})
    else:
        await validation.emit(EventType.FAILED, JobState.FAILED, reason=failed)
    shown: dict[str, Any] = {}

    async def settled() -> bool:
        nonlocal shown
        shown = (await project.client.get(f"/v1/datasets/{dataset['id']}")).json()
        return bool(shown["status"] != "VALIDATING")

    await eventually(settled)
    return shown


# No runner serves this pool: should a scheduler run later in the session (e2e), these jobs never train.
IDLE_POOL = "api-tests-idle"


def job_body(dataset_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "resnet on shapes",
        "framework": "timm",
        "task": "classify",
        "model": "resnet18",
        "dataset": dataset_id,
        "pool": IDLE_POOL,
        "hyperparameters": {"epochs": 1, "batch_size": 8, "image_size": 64, "learning_rate": 0.001},
        **overrides,
    }


@pytest.fixture
async def submit(project: Project, dataset: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def submit_job(**overrides: Any) -> dict[str, Any]:
        response = await project.client.post("/v1/jobs", json=job_body(dataset, **overrides))
        assert response.status_code == 202, response.text
        return dict(response.json())

    return submit_job


class Scheduler:
    """Plays the scheduler: publishes a job's events with consecutive versions, as it would."""

    def __init__(self, js: JetStreamContext, job: dict[str, Any], project_id: str) -> None:
        self.js = js
        self.job = job
        self.project_id = project_id
        self.version = 0
        self.attempt = 1

    async def emit(
        self, event_type: EventType, state: JobState, msg_id: str | None = None, **payload: Any
    ) -> int:
        """Publish the next event; return its stream sequence (the SSE id)."""
        self.version += 1
        event = JobEvent(
            job_id=self.job["id"],
            project_id=self.project_id,
            type=event_type,
            state=state,
            attempt=self.attempt,
            version=self.version,
            time=datetime.now(UTC),
            trace_id=self.job["trace_id"],
            payload=payload,
        )
        ack = await self.js.publish(
            subjects.event_subject(event.job_id, event_type.value),
            event.model_dump_json().encode(),
            stream=subjects.EVENTS_STREAM,
            headers={"Nats-Msg-Id": msg_id or f"{event.job_id}:{event.version}"},
        )
        return int(ack.seq)

    async def start(self) -> list[int]:
        """submitted, queued, running."""
        return [
            await self.emit(EventType.SUBMITTED, JobState.PENDING, name=self.job["name"], pool=IDLE_POOL),
            await self.emit(EventType.QUEUED, JobState.QUEUED, pool=IDLE_POOL),
            await self.emit(EventType.RUNNING, JobState.RUNNING),
        ]


@pytest.fixture
def scheduler(js: JetStreamContext, project: Project) -> Callable[[dict[str, Any]], Scheduler]:
    return lambda job: Scheduler(js, job, project.id)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def job_reaches(client: httpx.AsyncClient, job_id: str, **expected: Any) -> dict[str, Any]:
    latest: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal latest
        latest = (await client.get(f"/v1/jobs/{job_id}")).json()
        return all(latest.get(field) == value for field, value in expected.items())

    try:
        await eventually(check)
    except AssertionError:
        raise AssertionError(f"job never reached {expected}; last seen {latest}") from None
    return latest
