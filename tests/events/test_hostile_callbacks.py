"""Hostile callbacks against the real events service: refused as a 4xx with the `{"error", "detail"}` body,
before anything is published, never a 5xx (a 503 the trainer would retry forever) and never a hang."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from services.events.testing import stored_reports

NUL = "\x00"


def refused(response: httpx.Response, status: int, *, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    if field is not None:
        assert field in json.dumps(body["detail"]), body
    return dict(body)


async def send(
    url: str, path: str, token: str | None, content: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return await client.post(f"/v1/callbacks/{path}", content=content, headers=all_headers)


async def raw_status(url: str, head: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 2)
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1]), answer


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("progress", {"epoch": 1, "epochs": 2, "metrics": {"loss": float("nan")}}, "loss"),
        ("progress", {"epoch": 1, "epochs": 2, "metrics": {"loss": float("inf")}}, "loss"),
        ("progress", {"epoch": 1, "epochs": 2, "metrics": {"loss": float("-inf")}}, "loss"),
        ("progress", {"epoch": 1, "epochs": 2, "metrics": {f"lo{NUL}ss": 1.0}}, "metrics"),
        ("log", {"message": f"epoch 3{NUL}"}, "message"),
        ("done", {"status": "failed", "reason": f"oom{NUL}"}, "reason"),
        ("done", {"status": "succeeded", "metrics": {"map": [1.0, float("nan")]}}, "map"),
        ("done", {"status": "succeeded", "metrics": {"note": f"x{NUL}"}}, "note"),
        ("progress", {"epoch": 1, "epochs": 2, "job_id": "another"}, "job_id"),
        ("heartbeat", {"unknown": 1}, "unknown"),
    ],
)
async def test_unstorable_or_unknown_input_is_a_422_and_nothing_is_published(
    events_service, js, path: str, body: dict[str, Any], field: str
) -> None:
    job_id = uuid.uuid4().hex
    response = await send(events_service.url, path, events_service.token(job_id), json.dumps(body).encode())
    assert refused(response, 422, field=field)["error"] == "validation_error"
    assert await stored_reports(js, job_id) == []


async def test_a_lone_surrogate_in_a_log_line_is_a_422(events_service, js) -> None:
    job_id = uuid.uuid4().hex
    content = b'{"message": "half \\ud800 a pair"}'
    response = await send(events_service.url, "log", events_service.token(job_id), content)
    refused(response, 422)
    assert await stored_reports(js, job_id) == []


async def test_a_10_mib_progress_callback_is_a_413_not_a_retry(events_service, js) -> None:
    job_id = uuid.uuid4().hex
    metrics = {f"metric_{i:07d}": 0.123456789 for i in range(400_000)}  # over 10 MiB
    content = json.dumps({"epoch": 1, "epochs": 2, "metrics": metrics}).encode()
    assert len(content) > 10 * 1024 * 1024
    response = await send(events_service.url, "progress", events_service.token(job_id), content)
    refused(response, 413)
    assert await stored_reports(js, job_id) == []


async def test_a_chunked_callback_over_the_limit_is_a_413(events_service) -> None:
    async def chunks() -> Any:
        for _ in range(64):
            yield b" " * 65536

    async with httpx.AsyncClient(base_url=events_service.url, timeout=10) as client:
        headers = {"Authorization": f"Bearer {events_service.token(uuid.uuid4().hex)}"}
        try:
            response = await client.post("/v1/callbacks/progress", content=chunks(), headers=headers)
        except httpx.HTTPError:
            return  # closed before the client had sent everything: refused all the same
    refused(response, 413)


async def test_a_declared_3_gib_callback_is_answered_at_once(events_service) -> None:
    for token, status in ((None, 401), (events_service.token(uuid.uuid4().hex), 413)):
        auth = f"Authorization: Bearer {token}\n" if token else ""
        head = f"POST /v1/callbacks/progress HTTP/1.1\nHost: x\n{auth}Content-Length: 3221225472\n"
        started = time.monotonic()
        got, answer = await raw_status(events_service.url, head)
        assert got == status, answer
        assert time.monotonic() - started < 2
        assert b'"error"' in answer
        assert b'"detail"' in answer


async def test_a_body_without_a_token_is_refused_unread(events_service) -> None:
    response = await send(events_service.url, "progress", None, b"[" * (4 * 1024 * 1024))
    refused(response, 401)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"[" * 50_000, b'{"epoch": 1, "epochs": 2, "metrics": NaN}', b"\xff\xfe"],
)
async def test_bad_json_is_a_4xx_with_the_error_body(events_service, content: bytes) -> None:
    response = await send(events_service.url, "progress", events_service.token(uuid.uuid4().hex), content)
    assert 400 <= response.status_code < 500, response.text
    refused(response, response.status_code)


async def test_unknown_routes_and_methods_have_the_error_body(events_service) -> None:
    async with httpx.AsyncClient(base_url=events_service.url, timeout=10) as client:
        refused(await client.get("/nothing-here"), 404)
        refused(await client.delete("/healthz"), 405)
        refused(await client.get("/v1/storage/x"), 422)  # the signature's query parameters are missing
        bad_expiry = {"method": "GET", "expires": "²", "signature": "s"}
        refused(await client.get("/v1/storage/x", params=bad_expiry), 422)


async def test_readiness_names_each_dependency(events_service) -> None:
    async with httpx.AsyncClient(base_url=events_service.url, timeout=10) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "dependencies": {"database": "up", "nats": "up"}}
