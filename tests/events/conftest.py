"""A real events service (uvicorn on a free port, in a thread) on the session's nats-server and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from messaging import nats as common_nats
from services.common import db, tokens
from services.events.settings import EventsSettings
from services.events.testing import serve_in_thread
from vtp.embedded.ports import free_port

MAX_UPLOAD_BYTES = 256 * 1024


@dataclass(frozen=True)
class EventsService:
    url: str
    settings: EventsSettings
    private_key_pem: str

    def token(self, job_id: str, attempt: int = 1, ttl: int = 600, now: float | None = None) -> str:
        return tokens.mint(self.private_key_pem, job_id, attempt, ttl, now=now)


def upgrade_events(url: str) -> None:
    db.upgrade("events", url)


@pytest.fixture(scope="package")
def events_service(nats_server, postgres_url: str, session_dir: Path) -> Iterator[EventsService]:
    private_path, public_path = tokens.generate_keypair(session_dir / "events-tests" / "keys")
    upgrade_events(postgres_url)
    port = free_port()
    settings = EventsSettings(
        nats_url=nats_server.url,
        database_url=postgres_url,
        storage_local_dir=session_dir / "events-tests" / "storage",
        storage_signing_key="events-tests-signing-key",
        events_url=f"http://127.0.0.1:{port}",
        host="127.0.0.1",
        port=port,
        callback_public_key_file=public_path,
        max_upload_bytes=MAX_UPLOAD_BYTES,
    )
    with serve_in_thread(settings) as url:
        yield EventsService(url=url, settings=settings, private_key_pem=private_path.read_text())


# Package scope: a connection kept open through other packages' long synchronous tests (the event loop
# idle, no answer to the server's pings) is dropped by the server, and its teardown fails.
@pytest.fixture(scope="package")
async def js(nats_server) -> AsyncIterator[JetStreamContext]:
    nc = await common_nats.connect(nats_server.url, name="events-tests")
    context = nc.jetstream()
    await common_nats.ensure_streams(context)
    yield context
    await nc.drain()
