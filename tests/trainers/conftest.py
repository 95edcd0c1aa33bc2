"""Real servers for the trainer tests: the session's nats-server and Postgres, an events service on a free
port, and a synthetic dataset in its local storage."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from messaging import nats as common_nats
from services.common import db, storage, tokens
from services.events.settings import EventsSettings
from services.events.testing import serve_in_thread
from vtp.embedded.ports import free_port
from vtp.synthetic import make_imagefolder_archive, make_yolo_detect_archive, make_yolo_segment_archive


@dataclass(frozen=True)
class Platform:
    """What a scheduler would hold: the private key, the storage signer, the events URL."""

    events_url: str
    settings: EventsSettings
    private_key_pem: str
    signer: storage.UrlSigner
    nats_url: str
    monitor_url: str
    dataset_key: str

    def token(self, job_id: str, attempt: int = 1) -> str:
        return tokens.mint(self.private_key_pem, job_id, attempt, 600)

    def artifact_path(self, job_id: str, name: str) -> Path:
        return self.settings.storage_dir / storage.artifact_key(job_id, name)


@pytest.fixture(scope="package")
def platform(nats_server, postgres_url: str, session_dir: Path) -> Iterator[Platform]:
    base = session_dir / "trainer-tests"
    private_path, public_path = tokens.generate_keypair(base / "keys")
    db.upgrade("events", postgres_url)
    port = free_port()
    settings = EventsSettings(
        nats_url=nats_server.url,
        database_url=postgres_url,
        storage_local_dir=base / "storage",
        storage_signing_key="trainer-tests-signing-key",
        events_url=f"http://127.0.0.1:{port}",
        host="127.0.0.1",
        port=port,
        callback_public_key_file=public_path,
    )
    archive = make_imagefolder_archive(base / "shapes.zip", classes=3, train_per_class=12, val_per_class=4)
    dataset_key = storage.dataset_key(uuid.uuid4().hex, "shapes.zip")
    (settings.storage_dir / dataset_key).parent.mkdir(parents=True)
    shutil.copy(archive, settings.storage_dir / dataset_key)
    with serve_in_thread(settings) as url:
        yield Platform(
            events_url=url,
            settings=settings,
            private_key_pem=private_path.read_text(),
            signer=storage.UrlSigner(settings.storage_signing_key, url),
            nats_url=nats_server.url,
            monitor_url=nats_server.monitor_url,
            dataset_key=dataset_key,
        )


# Package scope: a connection kept open through other packages' long synchronous tests (the event loop
# idle, no answer to the server's pings) is dropped by the server, and its teardown fails.
@pytest.fixture(scope="package")
async def js(nats_server) -> AsyncIterator[JetStreamContext]:
    nc = await common_nats.connect(nats_server.url, name="trainer-tests")
    context = nc.jetstream()
    await common_nats.ensure_streams(context)
    yield context
    await nc.drain()


@pytest.fixture
def pool() -> str:
    """A pool of its own per test, so no test sees another's dispatch messages."""
    return f"t-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class YoloDataset:
    archive: Path
    key: str
    format: str


@pytest.fixture(scope="package")
def yolo_datasets(platform: Platform, session_dir: Path) -> dict[str, YoloDataset]:
    """Ultralytics-layout datasets in the events service's storage, by format (yolo-detect, yolo-segment)."""
    base = session_dir / "yolo-datasets"
    makers = {"yolo-detect": make_yolo_detect_archive, "yolo-segment": make_yolo_segment_archive}
    found = {}
    for dataset_format, make in makers.items():
        archive = make(base / f"{dataset_format}.zip", classes=2, train=16, val=8, size=64)
        key = storage.dataset_key(uuid.uuid4().hex, archive.name)
        (platform.settings.storage_dir / key).parent.mkdir(parents=True)
        shutil.copy(archive, platform.settings.storage_dir / key)
        found[dataset_format] = YoloDataset(archive, key, dataset_format)
    return found
