"""Degraded honestly, the events service: with Postgres and NATS gone a callback is a 503 with the JSON body
and `Retry-After` (the trainer retries it), `/readyz` names both, `/healthz` stays 200; NATS coming back
is noticed without a restart."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from services.common import tokens
from services.events.settings import EventsSettings
from services.events.testing import serve_in_thread
from vtp.embedded.nats_server import nats_server_binary
from vtp.embedded.ports import free_port, wait_for_port


def start_nats(store: Path, port: int) -> subprocess.Popen[bytes]:
    command = [nats_server_binary(), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", port)
    return process


async def test_dependencies_down_are_503s_and_readiness_names_them(tmp_path: Path) -> None:
    private_path, public_path = tokens.generate_keypair(tmp_path / "keys")
    nats_port, port = free_port(), free_port()
    nats = start_nats(tmp_path / "nats", nats_port)
    settings = EventsSettings(
        nats_url=f"nats://127.0.0.1:{nats_port}",
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing",  # nobody listens
        storage_local_dir=tmp_path / "storage",
        events_url=f"http://127.0.0.1:{port}",
        host="127.0.0.1",
        port=port,
        callback_public_key_file=public_path,
    )
    token = tokens.mint(private_path.read_text(), uuid.uuid4().hex, 1, 600)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with serve_in_thread(settings) as url:
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=15) as client:
                ready = await client.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["detail"]["down"] == ["database"]
                assert (await client.post("/v1/callbacks/log", json={"message": "hi"})).status_code == 202

                nats.terminate()
                nats.wait(10)
                ready = await client.get("/readyz")
                assert ready.json()["detail"]["down"] == ["database", "nats"]
                assert int(ready.headers["retry-after"]) > 0
                assert (await client.get("/healthz")).status_code == 200
                refused = await client.post("/v1/callbacks/progress", json={"epoch": 1, "epochs": 2})
                assert refused.status_code == 503, refused.text
                assert refused.headers["content-type"] == "application/json"
                assert int(refused.headers["retry-after"]) > 0
                assert set(refused.json()) == {"error", "detail"}

                nats = start_nats(tmp_path / "nats", nats_port)
                deadline = time.monotonic() + 20
                while (await client.get("/readyz")).json()["detail"]["down"] != ["database"]:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.2)
                assert (await client.post("/v1/callbacks/log", json={"message": "back"})).status_code == 202
    finally:
        nats.terminate()
        nats.wait(10)
