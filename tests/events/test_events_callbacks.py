"""Callbacks over real HTTP to a real events service; reports checked in the real VTP_REPORTS stream."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import subjects
from contracts.events import JobEvent
from contracts.jobs import EventType, JobState
from contracts.reports import ArtifactReport, DoneReport, LogReport, ProgressReport
from services.common import tokens
from services.events.testing import stored_reports

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def new_job() -> str:
    return uuid.uuid4().hex


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(job_id: str, attempt: int = 1) -> dict[str, object]:
    now = int(time.time())
    return {
        "job_id": job_id,
        "attempt": attempt,
        "aud": tokens.AUDIENCE,
        "iss": tokens.ISSUER,
        "iat": now,
        "exp": now + 600,
    }


def unsigned(header: dict[str, str], payload: dict[str, object], key: bytes | None = None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest()) if key else ""
    return f"{signing_input}.{signature}"


async def post(url: str, path: str, token: str | None, body: dict | None = None) -> httpx.Response:
    headers = {"traceparent": TRACEPARENT}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.post(f"/v1/callbacks/{path}", json=body or {}, headers=headers)


async def test_valid_callbacks_land_as_reports(events_service, js):
    job_id = new_job()
    token = events_service.token(job_id, attempt=2)
    before = datetime.now(UTC)

    answer = (await post(events_service.url, "heartbeat", token)).json()
    assert answer == {"stop": False, "reason": None, "callback_token": None, "expires_at": None}
    progress = {"epoch": 3, "epochs": 3, "metrics": {"train_loss": 0.5}, "resumed_from_epoch": 2}
    assert (await post(events_service.url, "progress", token, progress)).status_code == 202
    assert (
        await post(events_service.url, "log", token, {"level": "warning", "message": "hi"})
    ).status_code == 202
    done = {"status": "succeeded", "metrics": {"val_accuracy": 0.9}}
    assert (await post(events_service.url, "done", token, done)).status_code == 202
    # A retried done is dropped by the stream's duplicate window (Nats-Msg-Id <job>:<attempt>:done).
    assert (await post(events_service.url, "done", token, done)).status_code == 202

    found = await stored_reports(js, job_id)
    assert [subject for subject, _ in found] == [
        subjects.report_subject(job_id, kind) for kind in ("heartbeat", "progress", "log", "done")
    ]
    for _, report in found:
        assert (report.job_id, report.attempt) == (job_id, 2)
        assert report.trace_id == "0af7651916cd43dd8448eb211c80319c"
        assert before <= report.time <= datetime.now(UTC)
        assert report.time.tzinfo is not None
    assert isinstance(found[1][1], ProgressReport)
    assert found[1][1].metrics == {"train_loss": 0.5}
    assert found[1][1].resumed_from_epoch == 2
    assert isinstance(found[2][1], LogReport)
    assert found[2][1].level == "warning"
    assert isinstance(found[3][1], DoneReport)
    assert found[3][1].status == "succeeded"


async def test_a_report_cannot_be_filed_under_another_job(events_service, js):
    job_id, other = new_job(), new_job()
    token = events_service.token(job_id)
    smuggled = {"job_id": other, "attempt": 9, "epoch": 1, "epochs": 2}
    response = await post(events_service.url, "progress", token, smuggled)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert (await post(events_service.url, "progress", token, {"epoch": 1, "epochs": 2})).status_code == 202
    assert await stored_reports(js, other) == []
    assert [s for s, _ in await stored_reports(js, job_id)] == [subjects.report_subject(job_id, "progress")]


def refused_tokens(events_service, job_id: str) -> dict[str, str | None]:
    public_pem = events_service.settings.callback_public_key_file.read_bytes()
    valid = events_service.token(job_id)
    header, payload, signature = valid.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    forged_payload = b64(json.dumps({**claims(job_id), "attempt": 7}).encode())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    other_ed = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "missing": None,
        "garbage": "not-a-jwt",
        "expired": events_service.token(job_id, ttl=60, now=time.time() - 3600),
        "tampered signature": f"{header}.{payload}.{flipped}",
        "tampered claims": f"{header}.{forged_payload}.{signature}",
        "alg none": unsigned({"alg": "none", "typ": "JWT"}, claims(job_id)),
        "HS256 with the public key": unsigned({"alg": "HS256", "typ": "JWT"}, claims(job_id), public_pem),
        "RS256": jwt.encode(claims(job_id), rsa_pem, algorithm="RS256"),
        "another EdDSA key": jwt.encode(claims(job_id), other_ed, algorithm="EdDSA"),
        "wrong audience": jwt.encode(
            {**claims(job_id), "aud": "someone"}, events_service.private_key_pem, "EdDSA"
        ),
        "no attempt claim": jwt.encode(
            {k: v for k, v in claims(job_id).items() if k != "attempt"},
            events_service.private_key_pem,
            "EdDSA",
        ),
    }


@pytest.mark.parametrize("path", ["heartbeat", "progress", "log", "artifacts", "artifacts/complete", "done"])
async def test_refused_tokens_file_nothing(events_service, js, path):
    job_id = new_job()
    bodies = {
        "progress": {"epoch": 1, "epochs": 2},
        "log": {"message": "x"},
        "artifacts": {"name": "model.pt"},
        "artifacts/complete": {"name": "model.pt", "size": 1, "sha256": "0" * 64},
        "done": {"status": "succeeded"},
    }
    for case, token in refused_tokens(events_service, job_id).items():
        response = await post(events_service.url, path, token, bodies.get(path))
        assert response.status_code == 401, case
        assert response.json()["error"] == "unauthorized", case
        assert set(response.json()) == {"error", "detail"}
        if token:
            assert token not in response.text
    assert await stored_reports(js, job_id) == []


async def publish_event(js, job_id: str, event_type: EventType, state: JobState, attempt: int, version: int):
    event = JobEvent(
        job_id=job_id,
        project_id="p",
        type=event_type,
        state=state,
        attempt=attempt,
        version=version,
        time=datetime.now(UTC),
        trace_id="t",
    )
    await js.publish(
        subjects.event_subject(job_id, event_type.value),
        event.model_dump_json().encode(),
        stream=subjects.EVENTS_STREAM,
        headers={"Nats-Msg-Id": f"{job_id}:{version}"},
    )


async def wait_for_stop(events_service, token: str, expected: bool, within: float = 10.0) -> dict:
    deadline = time.monotonic() + within
    while True:
        answer = (await post(events_service.url, "heartbeat", token)).json()
        if answer["stop"] is expected or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.05)


async def test_heartbeat_stops_a_superseded_attempt_and_a_cancelled_job(events_service, js):
    job_id = new_job()
    first, second = events_service.token(job_id, attempt=1), events_service.token(job_id, attempt=2)
    await publish_event(js, job_id, EventType.SUBMITTED, JobState.PENDING, 1, 1)
    await publish_event(js, job_id, EventType.QUEUED, JobState.QUEUED, 1, 2)
    await publish_event(js, job_id, EventType.RUNNING, JobState.RUNNING, 1, 3)
    assert (await post(events_service.url, "heartbeat", first)).json()["stop"] is False

    await publish_event(js, job_id, EventType.RETRYING, JobState.QUEUED, 2, 4)
    answer = await wait_for_stop(events_service, first, expected=True)
    assert answer["stop"] is True
    assert "attempt 2" in answer["reason"]
    assert (await post(events_service.url, "heartbeat", second)).json()["stop"] is False

    await publish_event(js, job_id, EventType.CANCELLED, JobState.CANCELLED, 2, 5)
    answer = await wait_for_stop(events_service, second, expected=True)
    assert answer == {"stop": True, "reason": "job is CANCELLED", "callback_token": None, "expires_at": None}


async def test_job_status_is_applied_idempotently_by_version(events_service, js):
    job_id = new_job()
    token = events_service.token(job_id, attempt=1)
    await publish_event(js, job_id, EventType.CANCELLED, JobState.CANCELLED, 1, 3)
    assert (await wait_for_stop(events_service, token, expected=True))["stop"] is True
    # An older event arriving late (replay, redelivery) never moves the read model back.
    await publish_event(js, job_id, EventType.RUNNING, JobState.RUNNING, 1, 2)
    await asyncio.sleep(0.5)
    assert (await post(events_service.url, "heartbeat", token)).json()["stop"] is True


async def test_artifact_upload_flow(events_service, js):
    job_id = new_job()
    token = events_service.token(job_id)
    data = b"weights" * 1000
    answer = (await post(events_service.url, "artifacts", token, {"name": "model.pt"})).json()
    # The attempt's own place: `complete` moves it to the job's artifact key (see test_attempt_fencing).
    assert f"/v1/storage/jobs/{job_id}/attempts/1/model.pt?" in answer["upload_url"]
    assert datetime.fromisoformat(answer["expires_at"]) > datetime.now(UTC)
    sha = hashlib.sha256(data).hexdigest()

    missing = await post(
        events_service.url, "artifacts/complete", token, {"name": "model.pt", "size": 7, "sha256": sha}
    )
    assert missing.status_code == 409
    async with httpx.AsyncClient() as client:
        assert (await client.put(answer["upload_url"], content=data)).status_code == 201
    wrong_size = {"name": "model.pt", "size": len(data) + 1, "sha256": sha}
    assert (await post(events_service.url, "artifacts/complete", token, wrong_size)).status_code == 409
    complete = {"name": "model.pt", "size": len(data), "sha256": sha}
    assert (await post(events_service.url, "artifacts/complete", token, complete)).status_code == 202

    found = await stored_reports(js, job_id)
    assert [subject for subject, _ in found] == [subjects.report_subject(job_id, "artifact")]
    report = found[0][1]
    assert isinstance(report, ArtifactReport)
    assert (report.name, report.size, report.sha256) == ("model.pt", len(data), sha)
    assert report.storage_key == f"jobs/{job_id}/artifacts/model.pt"
    bad_name = await post(events_service.url, "artifacts", token, {"name": "../other/model.pt"})
    assert bad_name.status_code == 422


async def test_healthz(events_service):
    async with httpx.AsyncClient(base_url=events_service.url) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
