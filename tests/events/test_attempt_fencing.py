"""Attempts are fenced, on the real events service, nats-server and storage: once `job.retrying` moved a job
to attempt 2, attempt 1's token gets nothing but a heartbeat that tells it to stop, and nothing attempt 1
uploads, even through a URL it got before the retry, replaces what attempt 2 stored or resumes from."""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest

from contracts.dispatch import RESUME_CHECKPOINT
from contracts.jobs import EventType, JobState
from services.common import storage
from services.events.testing import stored_reports

from .test_events_callbacks import post, publish_event, wait_for_stop

pytestmark = pytest.mark.usefixtures("events_service")


async def retried(events_service, js) -> tuple[str, str, str]:
    """A job whose attempt 1 ran and which is now at attempt 2 (the events service has seen it): the job id
    and the tokens of both attempts."""
    job_id = uuid.uuid4().hex
    first, second = events_service.token(job_id, attempt=1), events_service.token(job_id, attempt=2)
    await publish_event(js, job_id, EventType.RETRYING, JobState.QUEUED, 2, 4)
    assert (await wait_for_stop(events_service, first, expected=True))["stop"] is True
    return job_id, first, second


def resume_url(events_service, job_id: str) -> str:
    """What the scheduler signs into attempt 2's dispatch (`Publisher._resume_url`)."""
    signer = storage.UrlSigner(
        events_service.settings.storage_signing_key, events_service.settings.events_url
    )
    return signer.sign(storage.artifact_key(job_id, RESUME_CHECKPOINT), "GET", 600)


async def upload(events_service, token: str, name: str, data: bytes) -> httpx.Response:
    """Ask for an upload URL, PUT the data there, then report it complete; the complete's answer."""
    answer = await post(events_service.url, "artifacts", token, {"name": name})
    assert answer.status_code == 200, answer.text
    async with httpx.AsyncClient() as client:
        assert (await client.put(answer.json()["upload_url"], content=data)).status_code == 201
    body = {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return await post(events_service.url, "artifacts/complete", token, body)


async def read(url: str) -> bytes:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    return response.content


CALLBACKS = [
    ("progress", {"epoch": 1, "epochs": 3, "metrics": {"loss": 0.5}}),
    ("log", {"level": "info", "message": "still here"}),
    ("artifacts", {"name": "model.pt"}),
    ("artifacts/complete", {"name": "model.pt", "size": 3, "sha256": "0" * 64}),
    ("done", {"status": "succeeded", "metrics": {}}),
]


async def test_a_superseded_attempt_gets_only_a_heartbeat_that_says_stop(events_service, js) -> None:
    job_id, first, second = await retried(events_service, js)

    for path, body in CALLBACKS:
        refused = await post(events_service.url, path, first, body)
        assert refused.status_code == 409, (path, refused.text)
        assert refused.json() == {
            "error": "attempt_superseded",
            "detail": {"job_id": job_id, "attempt": 1, "current_attempt": 2},
        }
    answer = (await post(events_service.url, "heartbeat", first)).json()
    assert answer["stop"] is True
    assert "superseded by attempt 2" in answer["reason"]

    # The current attempt is unaffected.
    for path, body in CALLBACKS[:2]:
        assert (await post(events_service.url, path, second, body)).status_code == 202
    assert (await post(events_service.url, "heartbeat", second)).json()["stop"] is False
    assert (await upload(events_service, second, "model.pt", b"new")).status_code == 202
    assert (await post(events_service.url, "done", second, CALLBACKS[-1][1])).status_code == 202

    reports = [
        (subject.rsplit(".", 1)[-1], report.attempt) for subject, report in await stored_reports(js, job_id)
    ]
    # Of attempt 1, only its heartbeats were filed (they record liveness; the scheduler ignores them).
    assert {kind for kind, attempt in reports if attempt == 1} == {"heartbeat"}
    assert [kind for kind, attempt in reports if attempt == 2 and kind != "heartbeat"] == [
        "progress",
        "log",
        "artifact",
        "done",
    ]


async def test_an_upload_url_from_before_the_retry_cannot_replace_the_current_attempts_files(
    events_service, js
) -> None:
    job_id = uuid.uuid4().hex
    first = events_service.token(job_id, attempt=1)
    assert (
        await upload(events_service, first, RESUME_CHECKPOINT, b"epoch 1 of attempt 1")
    ).status_code == 202
    # Attempt 1 holds an upload URL for its next checkpoint when the job moves on without it.
    stale = (await post(events_service.url, "artifacts", first, {"name": RESUME_CHECKPOINT})).json()
    await publish_event(js, job_id, EventType.RETRYING, JobState.QUEUED, 2, 4)
    assert (await wait_for_stop(events_service, first, expected=True))["stop"] is True
    second = events_service.token(job_id, attempt=2)

    # Attempt 2 resumes from what attempt 1 completed, then checkpoints on its own.
    assert await read(resume_url(events_service, job_id)) == b"epoch 1 of attempt 1"
    assert (
        await upload(events_service, second, RESUME_CHECKPOINT, b"epoch 2 of attempt 2")
    ).status_code == 202

    # The stale URL still writes, but only into attempt 1's own place, and attempt 1 cannot complete it.
    async with httpx.AsyncClient() as client:
        assert (await client.put(stale["upload_url"], content=b"late attempt 1")).status_code == 201
    late = {"name": RESUME_CHECKPOINT, "size": 14, "sha256": hashlib.sha256(b"late attempt 1").hexdigest()}
    assert (await post(events_service.url, "artifacts/complete", first, late)).status_code == 409
    assert await read(resume_url(events_service, job_id)) == b"epoch 2 of attempt 2"

    artifacts = [report for _, report in await stored_reports(js, job_id) if report.kind == "artifact"]
    assert [(report.attempt, report.storage_key) for report in artifacts] == [
        (1, storage.artifact_key(job_id, RESUME_CHECKPOINT)),
        (2, storage.artifact_key(job_id, RESUME_CHECKPOINT)),
    ]


async def test_a_retried_complete_finds_its_artifact_in_place(events_service, js) -> None:
    """A `complete` retried after its first try moved the upload (and its report was lost) is accepted;
    one for an artifact never uploaded is not."""
    job_id = uuid.uuid4().hex
    token = events_service.token(job_id, attempt=1)
    data = b"weights" * 10
    assert (await upload(events_service, token, "model.pt", data)).status_code == 202
    body = {"name": "model.pt", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert (await post(events_service.url, "artifacts/complete", token, body)).status_code == 202
    wrong = {**body, "size": len(data) + 1}
    assert (await post(events_service.url, "artifacts/complete", token, wrong)).status_code == 409
    never = {**body, "name": "other.pt"}
    assert (await post(events_service.url, "artifacts/complete", token, never)).status_code == 409
