"""Hostile input against the real api server: every refusal is a 4xx with the `{"error", "detail"}` body,
none is a 5xx, none hangs, none grows the server by reading what it should not."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from .conftest import ApiServer, Project, job_body

NUL = "\x00"


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    yield data  # no Content-Length: httpx sends it chunked, past the submit shortcut, through FastAPI


def refused(response: httpx.Response, status: int, *, field: str | None = None) -> dict[str, Any]:
    """The response is `status` with the JSON error body (naming `field` somewhere in its detail)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    if field is not None:
        assert field in json.dumps(body["detail"]), body
    return dict(body)


async def raw_request(url: str, head: str, body: bytes = b"", read_timeout: float = 5.0) -> tuple[int, bytes]:
    """Send `head` (request line and headers) and `body` over a plain socket; the status and the whole
    answer, read until the server closes or `read_timeout` passes."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        answer = b""
        deadline = time.monotonic() + read_timeout
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = await asyncio.wait_for(reader.read(65536), max(0.01, deadline - time.monotonic()))
            if not chunk:
                break
            answer += chunk
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1]), answer


# --- NUL, surrogates, NaN: refused where they enter, naming the field --------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/a%00b",
        "/v1/jobs/a%00b/artifacts",
        "/v1/jobs/abc/artifacts/best%00.pt",
        "/v1/models/m%00",
        "/v1/datasets/shapes%00",
        "/v1/datasets/shapes%00:1",
        "/v1/jobs?framework=ti%00mm",
        "/v1/jobs?cursor=%00",
        "/v1/datasets?name=sh%00apes",
    ],
)
async def test_a_nul_in_an_id_or_query_parameter_is_a_422(project: Project, path: str) -> None:
    refused(await project.client.get(path), 422)


async def test_a_nul_in_a_path_of_a_post_is_a_422(project: Project) -> None:
    refused(await project.client.post("/v1/jobs/a%00b/cancel", json={}), 422)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": f"resnet{NUL}"}, "name"),
        ({"dataset": f"shapes{NUL}"}, "dataset"),
        ({"hyperparameters": {"epochs": 1, "learning_rate": float("nan")}}, "learning_rate"),
        ({"hyperparameters": {"epochs": 1, "learning_rate": float("inf")}}, "learning_rate"),
        ({"hyperparameters": {f"epochs{NUL}": 1}}, "hyperparameters"),
        (
            {
                "framework": "ultralytics",
                "task": "detect",
                "model": "yolo11n.yaml",
                "hyperparameters": {"lr0": float("nan")},
            },
            "lr0",
        ),
        (
            {
                "framework": "ultralytics",
                "task": "detect",
                "model": "yolo11n.yaml",
                "hyperparameters": {"optimizer": f"SGD{NUL}"},
            },
            "optimizer",
        ),
    ],
)
async def test_unstorable_text_and_non_finite_numbers_in_a_submit_are_a_422(
    project: Project, dataset: str, overrides: dict[str, Any], field: str
) -> None:
    body = json.dumps(job_body(dataset, **overrides))  # NaN and Infinity as Python's json writes them
    for content in (body.encode(), chunked(body.encode())):  # the shortcut, then FastAPI
        response = await project.client.post(
            "/v1/jobs", content=content, headers={"Content-Type": "application/json"}
        )
        refused(response, 422, field=field)


async def test_a_lone_surrogate_is_a_422_on_both_submit_paths(project: Project, dataset: str) -> None:
    body = json.dumps(job_body(dataset, name="\ud800")).encode()  # ensure_ascii: "\ud800" as an escape
    for content in (body, chunked(body)):
        response = await project.client.post(
            "/v1/jobs", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, response.text


async def test_a_cancel_with_an_unknown_field_or_a_nul_reason_is_a_422(project: Project) -> None:
    refused(await project.client.post("/v1/jobs/abc/cancel", json={"reasn": "typo"}), 422, field="reasn")
    refused(await project.client.post("/v1/jobs/abc/cancel", json={"reason": f"x{NUL}"}), 422, field="reason")


async def test_a_nul_in_a_dataset_upload_is_a_422(project: Project) -> None:
    response = await project.client.post(
        "/v1/datasets", json={"name": f"s{NUL}", "format": "imagefolder", "upload_id": "u"}
    )
    refused(response, 422, field="name")
    files = {"file": ("shapes.zip", b"PK", "application/zip")}
    response = await project.client.post(
        "/v1/datasets", data={"name": f"s{NUL}", "format": "imagefolder"}, files=files
    )
    refused(response, 422, field="name")
    files = {"file": (f"sh{NUL}apes.zip", b"PK", "application/zip")}
    response = await project.client.post("/v1/models", data={"name": f"w{NUL}"}, files=files)
    refused(response, 422)


@pytest.mark.parametrize("reference", ["shapes:²", "shapes:١٢", "shapes:99999999999999", "x" * 200])
async def test_odd_dataset_references_are_not_found(project: Project, reference: str) -> None:
    refused(await project.client.get(f"/v1/datasets/{quote(reference)}"), 404)


# --- Last-Event-ID and cursors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["²", "١٢", "\uff11\uff12", "-1", "1e3", "99999999999999999999", "9223372036854775808"]
)
async def test_a_last_event_id_that_is_not_an_ascii_sequence_is_a_422(project: Project, value: str) -> None:
    # Sent as UTF-8 and, where it can be, as Latin-1 (a single byte `\xb2` is read as `²`).
    encodings = [value.encode()] + ([value.encode("latin-1")] if value.isascii() or value == "²" else [])
    for path in ("/v1/events", "/v1/jobs/abc/events"):
        for header in encodings:
            response = await project.client.get(path, headers={"Last-Event-ID": header})
            refused(response, 422 if path == "/v1/events" else 404)
        refused(await project.client.get(path, params={"last_event_id": value}), 422)


def cursor(created_at: str, job_id: object = "abc") -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, job_id]).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "value",
    [
        cursor("0001-01-01T00:00:00+00:00"),
        cursor("9999-12-31T23:59:59+00:00"),
        cursor("2026-01-01T00:00:00"),  # naive
        cursor("2026-01-01T00:00:00+00:00", "a\x00b"),
        cursor("2026-01-01T00:00:00+00:00", 7),
        cursor("not a date"),
        "!!!",
        base64.urlsafe_b64encode(b"[1]").decode(),
    ],
)
async def test_a_crafted_cursor_is_a_422(project: Project, value: str) -> None:
    refused(await project.client.get("/v1/jobs", params={"cursor": value}), 422, field="cursor")


async def test_a_real_cursor_still_pages(project: Project) -> None:
    response = await project.client.get("/v1/jobs", params={"cursor": cursor("2026-01-01T00:00:00+00:00")})
    assert response.status_code == 200, response.text


# --- bodies: authentication first, then a limit -------------------------------------------------------


async def test_a_body_without_a_key_is_refused_before_it_is_read(api_server: ApiServer) -> None:
    # 3 GiB declared, nothing sent: the answer comes at once (the server did not wait for the body).
    started = time.monotonic()
    head = "POST /v1/jobs HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 3221225472\n"
    status, answer = await raw_request(api_server.url, head)
    assert status == 401, answer
    assert time.monotonic() - started < 2
    assert b'"error": "unauthorized"' in answer
    # 8 MiB actually sent, without a key: refused all the same, the body unread.
    async with httpx.AsyncClient(base_url=api_server.url, timeout=10) as client:
        try:
            response = await client.post("/v1/datasets/x", content=b"{" * (8 * 1024 * 1024))
        except httpx.HTTPError:
            pass  # the server may close before the client has sent it all: the point is it did not read it
        else:
            refused(response, 401)


async def test_a_declared_body_over_the_limit_is_a_413_at_once(
    api_server: ApiServer, project: Project
) -> None:
    for path in ("/v1/jobs", "/v1/jobs/abc/cancel", "/v1/datasets/uploads"):
        started = time.monotonic()
        head = (
            f"POST {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {project.key}\n"
            "Content-Type: application/json\nContent-Length: 3221225472\n"
        )
        status, answer = await raw_request(api_server.url, head)
        assert status == 413, answer
        assert b'"error": "payload_too_large"' in answer
        assert time.monotonic() - started < 2


async def test_a_chunked_body_is_cut_at_the_limit(api_server: ApiServer, project: Project) -> None:
    head = (
        f"POST /v1/jobs HTTP/1.1\nHost: x\nAuthorization: Bearer {project.key}\n"
        "Content-Type: application/json\nTransfer-Encoding: chunked\n"
    )
    chunk = b" " * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    status, answer = await raw_request(api_server.url, head, body)
    assert status == 413, answer


async def test_a_huge_body_with_a_key_is_a_413(project: Project) -> None:
    response = await project.client.post(
        "/v1/jobs", content=b"[" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"}
    )
    refused(response, 413)


async def test_a_deeply_nested_body_is_a_4xx(project: Project) -> None:
    nested = '{"a":' * 20_000 + "1" + "}" * 20_000
    for content in (nested.encode(), chunked(nested.encode())):
        for path in ("/v1/jobs", "/v1/jobs/abc/cancel"):
            response = await project.client.post(
                path, content=content, headers={"Content-Type": "application/json"}
            )
            assert 400 <= response.status_code < 500, response.text
            refused(response, response.status_code)
    without_key = httpx.AsyncClient(base_url=str(project.client.base_url), timeout=10)
    async with without_key:
        refused(await without_key.post("/v1/jobs", content=nested.encode()), 401)


async def test_not_found_and_method_not_allowed_have_the_json_body(api_server: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api_server.url, timeout=10) as client:
        # A path naming no file is a dashboard route (index.html, services/api/web.py); a missing file is not.
        refused(await client.get("/nothing-here.js"), 404)
        refused(await client.delete("/healthz"), 405)
        refused(await client.get("/v1/nothing-here"), 401)  # no route enumeration without a key


async def test_readiness_names_each_dependency(api_server: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api_server.url, timeout=10) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "dependencies": {"database": "up", "nats": "up"}}
