from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from services.api.submit_shortcut import MAX_BODY_BYTES, SubmitShortcut

from .conftest import Project, job_body

# Routing only: what reaches the app behind the shortcut, and with which body.


class Downstream:
    """The app behind the shortcut (FastAPI in the service): records what reached it, answers 299."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(
    method: str, path: str, headers: dict[str, str], chunks: list[bytes]
) -> tuple[Downstream, list[Message]]:
    downstream = Downstream()
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
    }
    incoming: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await SubmitShortcut(downstream)(scope, receive, send)
    return downstream, sent


JSON = {"content-type": "application/json"}


async def test_other_requests_and_bodies_it_does_not_read_pass_through() -> None:
    body = b'{"framework": "timm"}'
    cases = [
        ("GET", "/v1/jobs", JSON),
        ("POST", "/v1/jobs/abc/cancel", {**JSON, "content-length": str(len(body))}),
        ("POST", "/v1/jobs", JSON),  # no length: a chunked body, not read here
        ("POST", "/v1/jobs", {**JSON, "content-length": str(MAX_BODY_BYTES + 1)}),
        ("POST", "/v1/jobs", {"content-type": "text/plain", "content-length": str(len(body))}),
    ]
    for method, path, headers in cases:
        downstream, sent = await call(method, path, headers, [body])
        assert downstream.paths == [path]
        assert downstream.bodies == [body]
        assert sent[0]["status"] == 299


async def test_a_submit_it_cannot_answer_reaches_the_app_with_its_whole_body() -> None:
    chunks = [b'{"framework": "ti', b'mm", "model": "resnet18"}']
    length = str(sum(map(len, chunks)))
    for headers in (
        {**JSON, "content-length": length},  # no API key
        {**JSON, "content-length": length, "authorization": "Basic abc"},
        {**JSON, "content-length": length, "authorization": "Bearer k", "idempotency-key": "x" * 256},
    ):
        downstream, sent = await call("POST", "/v1/jobs", headers, chunks)
        assert downstream.bodies == [b"".join(chunks)]
        assert sent[0]["status"] == 299


# Over real HTTP: the shortcut and FastAPI answer alike.


async def chunked(body: dict[str, Any]) -> AsyncIterator[bytes]:
    yield json.dumps(body).encode()  # no Content-Length: httpx sends it chunked, past the shortcut


async def test_a_submit_answers_alike_through_the_shortcut_and_through_fastapi(
    project: Project, dataset: str
) -> None:
    short = await project.client.post("/v1/jobs", json=job_body(dataset), headers={"Idempotency-Key": "a"})
    full = await project.client.post(
        "/v1/jobs",
        content=chunked(job_body(dataset)),
        headers={"Content-Type": "application/json", "Idempotency-Key": "b"},
    )
    assert short.status_code == full.status_code == 202, (short.text, full.text)
    for response in (short, full):
        job = response.json()
        assert response.headers["location"] == f"/v1/jobs/{job['id']}"
        assert response.headers["idempotent-replayed"] == "false"
        assert response.headers["content-type"] == "application/json"
    assert short.json().keys() == full.json().keys()
    assert short.json()["id"] != full.json()["id"]
    replayed = await project.client.post("/v1/jobs", json=job_body(dataset), headers={"Idempotency-Key": "b"})
    assert (replayed.status_code, replayed.json()["id"]) == (202, full.json()["id"])
    assert replayed.headers["idempotent-replayed"] == "true"


async def test_refusals_are_the_same_through_the_shortcut_and_through_fastapi(
    project: Project, dataset: str
) -> None:
    cases = [
        ({"Authorization": "Bearer not-a-key"}, job_body(dataset)),  # 401
        ({}, job_body(dataset, max_attempts=0)),  # 422 from validation: FastAPI's, the shortcut hands it on
        ({}, job_body("f" * 32)),  # an unknown dataset: refused by the service
        ({"Idempotency-Key": "k" * 256}, job_body(dataset)),  # FastAPI's: the shortcut hands it on
    ]
    for headers, body in cases:
        short = await project.client.post("/v1/jobs", json=body, headers=headers)
        full = await project.client.post(
            "/v1/jobs", content=chunked(body), headers={**headers, "Content-Type": "application/json"}
        )
        assert short.status_code == full.status_code, (short.text, full.text)
        assert short.status_code in (401, 404, 422), short.text
        assert short.json() == full.json()
        assert short.headers.get("www-authenticate") == full.headers.get("www-authenticate")

    not_json = await project.client.post(
        "/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (not_json.status_code, not_json.json()["error"]) == (422, "validation_error")
