"""Degraded honestly: with Postgres or NATS gone, the api answers 503 with the JSON body and `Retry-After`
(never a plain 500), `/readyz` names what is down, `/healthz` stays 200, and all of it recovers without a
restart when the dependency comes back.

Each test runs a private api: Postgres is reached through a TCP proxy the test can cut and restore (the
session's Postgres keeps serving everyone else), NATS is a private nats-server the test stops and starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from messaging.nats import prepare
from services.api.app import create_app
from services.api.settings import ApiSettings
from vtp.embedded.nats_server import nats_server_binary
from vtp.embedded.ports import free_port, wait_for_port

from .conftest import IDLE_POOL, Project, job_body

# What Postgres answers a connection while it starts (or recovers after a crash): a FATAL ErrorResponse
# with SQLSTATE 57P03, which asyncpg raises as CannotConnectNowError.
STARTING_UP = b"".join(
    (
        b"S",
        b"FATAL\0",
        b"V",
        b"FATAL\0",
        b"C",
        b"57P03\0",
        b"M",
        b"the database system is starting up\0",
        b"\0",
    )
)
SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


class Proxy:
    """TCP 127.0.0.1:<port> -> Postgres' unix socket; `cut()` drops the listener and every connection;
    with `starting_up` set, a new connection is answered as a Postgres that is starting up."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.port = free_port()
        self.starting_up = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.starting_up:
            await self._refuse_as_starting_up(client_reader, client_writer)
            return
        reader, writer = await asyncio.open_unix_connection(self.socket_path)
        self._writers |= {client_writer, writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(client_reader, writer), pipe(reader, client_writer))
        self._writers -= {client_writer, writer}

    @staticmethod
    async def _refuse_as_starting_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            length = int.from_bytes(await reader.readexactly(4), "big")
            packet = await reader.readexactly(length - 4)
            if (length.to_bytes(4, "big") + packet) == SSL_REQUEST:
                writer.write(b"N")  # no TLS; the startup message follows
                length = int.from_bytes(await reader.readexactly(4), "big")
                await reader.readexactly(length - 4)
            writer.write(b"E" + (len(STARTING_UP) + 4).to_bytes(4, "big") + STARTING_UP)
            await writer.drain()
        writer.close()


class PrivateNats:
    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        address = ["-a", "127.0.0.1", "-p", str(self.port)]
        command = [nats_server_binary(), "-js", "-sd", str(self.store), *address]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@contextlib.contextmanager
def serve(settings: ApiSettings) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="degraded-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the api did not start"
        assert time.monotonic() < deadline, "the api did not start in time"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path / "nats")
    server.start()
    asyncio.run(prepare(server.url, [IDLE_POOL]))  # the pool the tests' jobs name is declared
    yield server
    server.stop()


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[Proxy]:
    url = make_url(postgres_url)
    socket_dir = url.query["host"]
    assert isinstance(socket_dir, str)
    proxy = Proxy(f"{socket_dir}/.s.PGSQL.{url.port or 5432}")
    await proxy.start()
    yield proxy
    with contextlib.suppress(Exception):
        await proxy.cut()


def unavailable(response: httpx.Response, detail_mentions: str = "") -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json", response.headers
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert detail_mentions in str(body["detail"])


async def eventually_ready(client: httpx.AsyncClient, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while (response := await client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.2)


async def test_postgres_down_is_a_503_everywhere_and_recovers(
    project: Project, dataset: str, proxy: Proxy, private_nats: PrivateNats, postgres_url: str, tmp_path: Path
) -> None:
    url = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port, query={})
    settings = ApiSettings(
        nats_url=private_nats.url,
        database_url=url.render_as_string(hide_password=False),
        data_dir=tmp_path / "api",
    )
    headers = {"Authorization": f"Bearer {project.key}"}
    with serve(settings) as base:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=15) as client:
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.post("/v1/jobs", json=job_body(dataset))).status_code == 202

            await proxy.cut()
            ready = await client.get("/readyz")
            unavailable(ready, "database")
            assert ready.json()["detail"]["down"] == ["database"]
            assert (await client.get("/healthz")).status_code == 200
            for _ in range(3):  # pooled connections first (dead now), then new ones (refused)
                unavailable(await client.get("/v1/jobs"))
                unavailable(await client.post("/v1/jobs", json=job_body(dataset)))
                unavailable(await client.get(f"/v1/datasets/{dataset}"))
            async with httpx.AsyncClient(base_url=base, timeout=15) as stranger:
                unavailable(await stranger.get("/v1/jobs", headers={"Authorization": "Bearer vtp_unknown"}))

            # Back, but still starting up (after a crash Postgres recovers before it takes connections).
            proxy.starting_up = True
            await proxy.start()
            keyed = {"Idempotency-Key": "while-starting-up"}
            for _ in range(2):
                unavailable(await client.get("/v1/jobs"))
                unavailable(await client.post("/v1/jobs", json=job_body(dataset), headers=keyed))
            await proxy.cut()

            proxy.starting_up = False
            await proxy.start()
            await eventually_ready(client)
            assert (await client.get("/v1/jobs")).status_code == 200
            assert (await client.post("/v1/jobs", json=job_body(dataset))).status_code == 202
            assert (await client.post("/v1/jobs", json=job_body(dataset), headers=keyed)).status_code == 202


async def test_nats_down_is_a_503_and_recovers(
    project: Project, dataset: str, private_nats: PrivateNats, postgres_url: str, tmp_path: Path
) -> None:
    settings = ApiSettings(nats_url=private_nats.url, database_url=postgres_url, data_dir=tmp_path / "api")
    headers = {"Authorization": f"Bearer {project.key}"}
    with serve(settings) as base:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=15) as client:
            assert (await client.post("/v1/jobs", json=job_body(dataset))).status_code == 202

            private_nats.stop()
            ready = await client.get("/readyz")
            unavailable(ready, "nats")
            assert ready.json()["detail"]["down"] == ["nats"]
            assert (await client.get("/healthz")).status_code == 200
            unavailable(await client.post("/v1/jobs", json=job_body(dataset)))
            assert (await client.get("/v1/jobs")).status_code == 200  # reads need no NATS

            private_nats.start()
            await eventually_ready(client)
            assert (await client.post("/v1/jobs", json=job_body(dataset))).status_code == 202
