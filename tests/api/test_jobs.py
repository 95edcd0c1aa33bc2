from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from nats.js import JetStreamContext

from contracts import subjects
from contracts.commands import CancelJob, SubmitJob
from contracts.jobs import EventType, JobState
from contracts.ultralytics import UltralyticsSpec
from messaging.nats import ensure_pool_consumer

from .conftest import IDLE_POOL, Project, job_body, job_reaches

JOB_FIELDS = {
    "id", "name", "state", "attempt", "max_attempts", "version", "framework", "task", "model",
    "hyperparameters", "dataset", "dataset_version", "pool", "trace_id", "created_at", "updated_at",
    "metrics", "final_metrics", "reason", "preemptions", "weights", "export", "queue_position",
    "pending_reason",
}  # fmt: skip


async def last_command(js: JetStreamContext, subject: str) -> tuple[dict[str, str], bytes]:
    message = await js.get_last_msg(subjects.COMMANDS_STREAM, subject)
    return dict(message.headers or {}), message.data


async def test_submit_answers_202_with_location_and_publishes_submit(
    project: Project, dataset: str, js: JetStreamContext
) -> None:
    response = await project.client.post("/v1/jobs", json=job_body(dataset, max_attempts=2))
    assert response.status_code == 202, response.text
    job = response.json()
    assert set(job) == JOB_FIELDS
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert re.fullmatch(r"[0-9a-f]{32}", job["id"])
    assert re.fullmatch(r"[0-9a-f]{32}", job["trace_id"])
    assert job["state"] == "PENDING"
    assert job["max_attempts"] == 2
    assert job["dataset"] == dataset
    assert job["hyperparameters"] == {"epochs": 1, "batch_size": 8, "image_size": 64, "learning_rate": 0.001}

    headers, data = await last_command(js, subjects.SUBMIT_JOB)
    command = SubmitJob.model_validate_json(data)
    assert headers["Nats-Msg-Id"] == job["id"]
    # Tracing is off here: the scheduler continues from the command's trace id, so no context is sent.
    assert "traceparent" not in headers
    assert command.trace_id == job["trace_id"]
    assert command.job_id == job["id"]
    assert command.project_id == project.id
    assert command.spec.model == "resnet18"
    assert command.dataset.id == dataset
    assert command.dataset.storage_key.startswith(f"datasets/{dataset}/")
    assert command.max_attempts == 2

    assert (await project.client.get(response.headers["location"])).json() == job


async def test_submit_defaults_and_validation(project: Project, dataset: str) -> None:
    response = await project.client.post(
        "/v1/jobs", json={"framework": "timm", "task": "classify", "model": "resnet18", "dataset": dataset}
    )
    assert response.status_code == 202
    assert response.json()["max_attempts"] == 3
    assert response.json()["pool"] == "local"
    # Cancelled at once, so a scheduler started later in the session never trains it.
    assert (await project.client.post(f"/v1/jobs/{response.json()['id']}/cancel")).status_code == 202

    bad = await project.client.post("/v1/jobs", json=job_body(dataset, framework="caffe"))
    assert bad.status_code == 422
    assert bad.json()["error"] == "validation_error"
    assert bad.json()["detail"][0]["loc"] == ["body", "framework"]
    bad = await project.client.post(
        "/v1/jobs", json=job_body(dataset, hyperparameters={"epochs": 0, "momentum": 1})
    )
    assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {
        ("body", "hyperparameters", "epochs"),
        ("body", "hyperparameters", "momentum"),
    }
    unknown = await project.client.post("/v1/jobs", json=job_body("0" * 32))
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == [
        {"loc": ["body", "dataset"], "msg": f"dataset {'0' * 32} not found", "type": "not_found"}
    ]


async def test_idempotency_key_returns_the_same_job(project: Project, dataset: str) -> None:
    headers = {"Idempotency-Key": "retry-me"}
    first = await project.client.post("/v1/jobs", json=job_body(dataset), headers=headers)
    again = await project.client.post("/v1/jobs", json=job_body(dataset), headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert (first.headers["idempotent-replayed"], again.headers["idempotent-replayed"]) == ("false", "true")
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    other = await project.client.post(
        "/v1/jobs", json=job_body(dataset), headers={"Idempotency-Key": "other"}
    )
    assert other.json()["id"] != first.json()["id"]


async def test_concurrent_retries_create_one_job(project: Project, dataset: str) -> None:
    headers = {"Idempotency-Key": "concurrent"}
    responses = await asyncio.gather(
        *(project.client.post("/v1/jobs", json=job_body(dataset), headers=headers) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {202}
    assert sorted(r.headers["idempotent-replayed"] for r in responses) == ["false"] + ["true"] * 7
    assert len({r.json()["id"] for r in responses}) == 1
    assert len((await project.client.get("/v1/jobs")).json()["items"]) == 1


async def test_list_filters_by_state_and_pages_newest_first(project: Project, submit, scheduler) -> None:
    jobs = [await submit(name=f"job-{i}") for i in range(5)]
    newest_first = [job["id"] for job in reversed(jobs)]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await project.client.get("/v1/jobs", params=params)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first

    events = scheduler(jobs[1])
    await events.emit(EventType.SUBMITTED, JobState.PENDING)
    await events.emit(EventType.QUEUED, JobState.QUEUED)
    await job_reaches(project.client, jobs[1]["id"], state="QUEUED")
    queued = (await project.client.get("/v1/jobs", params={"state": "QUEUED"})).json()
    assert [item["id"] for item in queued["items"]] == [jobs[1]["id"]]
    pending = (await project.client.get("/v1/jobs", params={"state": "PENDING", "limit": 10})).json()
    assert len(pending["items"]) == 4

    bad = await project.client.get("/v1/jobs", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "cursor"]
    bad = await project.client.get("/v1/jobs", params={"state": "SLEEPING"})
    assert bad.status_code == 422


async def test_list_filters_by_pool(project: Project, submit, js: JetStreamContext) -> None:
    other_pool = f"filter-{uuid.uuid4().hex[:8]}"
    await ensure_pool_consumer(js, other_pool)  # declared; no runner serves it
    idle = [await submit(name=f"idle-{i}") for i in range(3)]
    other = await submit(name="other", pool=other_pool)

    async def listed(**params: Any) -> list[str]:
        response = await project.client.get("/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await listed(pool=other_pool) == [other["id"]]
    assert await listed(pool=IDLE_POOL) == [job["id"] for job in reversed(idle)]
    assert await listed(pool=IDLE_POOL, state="PENDING", limit=1) == [idle[-1]["id"]]
    assert await listed(pool="no-such-pool") == []
    # Paged within the pool: the cursor goes on past the other pool's job.
    first = (await project.client.get("/v1/jobs", params={"pool": IDLE_POOL, "limit": 2})).json()
    rest = await listed(pool=IDLE_POOL, cursor=first["next_cursor"])
    assert [item["id"] for item in first["items"]] + rest == [job["id"] for job in reversed(idle)]

    for bad in ("GPU", "-a", "a" * 64, "a b", "a\x00"):
        refused = await project.client.get("/v1/jobs", params={"pool": bad})
        assert refused.status_code == 422, bad
        body = refused.json()
        assert body["error"] == "validation_error", body
        assert body["detail"][0]["loc"] == ["query", "pool"], body


async def test_cancel_publishes_and_refuses_terminal_job(
    project: Project, submit, scheduler, js: JetStreamContext
) -> None:
    job = await submit()
    response = await project.client.post(f"/v1/jobs/{job['id']}/cancel", json={"reason": "changed my mind"})
    assert response.status_code == 202
    assert response.json()["id"] == job["id"]
    _, data = await last_command(js, subjects.CANCEL_JOB)
    command = CancelJob.model_validate_json(data)
    assert (command.job_id, command.project_id, command.reason) == (job["id"], project.id, "changed my mind")
    assert command.trace_id == job["trace_id"]

    events = scheduler(job)
    await events.start()
    await events.emit(EventType.CANCELLED, JobState.CANCELLED, reason="changed my mind")
    await job_reaches(project.client, job["id"], state="CANCELLED")
    again = await project.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"
    assert again.json()["detail"]["state"] == "CANCELLED"


def yolo_body(dataset_id: str, **overrides: Any) -> dict[str, Any]:
    yolo = {
        "framework": "ultralytics",
        "task": "detect",
        "model": "yolo11n.yaml",
        "hyperparameters": {"epochs": 2, "imgsz": 64, "batch": 4, "lr0": 0.01},
    }
    return job_body(dataset_id, **(yolo | overrides))


async def test_a_yolo_job_is_accepted_and_published_with_its_arguments(
    project: Project, yolo_dataset: str, js: JetStreamContext
) -> None:
    response = await project.client.post("/v1/jobs", json=yolo_body(yolo_dataset))
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["framework"], job["task"], job["model"]) == ("ultralytics", "detect", "yolo11n.yaml")
    assert job["hyperparameters"] == {"epochs": 2, "imgsz": 64, "batch": 4, "lr0": 0.01}
    _, data = await last_command(js, subjects.SUBMIT_JOB)
    command = SubmitJob.model_validate_json(data)
    assert command.job_id == job["id"]
    assert isinstance(command.spec, UltralyticsSpec)
    assert command.spec.hyperparameters == job["hyperparameters"]
    assert command.dataset.format == "yolo-detect"


async def detail(project: Project, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = await project.client.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    return list(response.json()["detail"])


async def test_a_yolo_job_is_refused_at_the_field_that_is_wrong(project: Project, yolo_dataset: str) -> None:
    arguments = {"epochs": 0, "learning_rate": 0.1, "device": "cuda:0"}
    assert await detail(project, yolo_body(yolo_dataset, hyperparameters=arguments)) == [
        {
            "loc": ["body", "hyperparameters", "epochs"],
            "msg": "must be at least 1",
            "type": "argument_invalid",
        },
        {
            "loc": ["body", "hyperparameters", "learning_rate"],
            "msg": "unknown Ultralytics train argument",
            "type": "argument_unknown",
        },
        {
            "loc": ["body", "hyperparameters", "device"],
            "msg": "set by the platform, not by a job",
            "type": "argument_platform",
        },
    ]
    [wrong_model] = await detail(project, yolo_body(yolo_dataset, task="segment"))
    assert wrong_model["loc"] == ["body", "model"]
    assert wrong_model["msg"] == "'yolo11n.yaml' does not fit task 'segment' (use yolo11n-seg.yaml)"
    [not_yaml] = await detail(project, yolo_body(yolo_dataset, model="yolo11n.pt"))
    assert not_yaml["loc"] == ["body", "model"]
    [timm_task] = await detail(project, job_body(yolo_dataset, task="detect"))
    assert timm_task["loc"] == ["body", "task"]


async def test_a_dataset_that_does_not_fit_the_task_is_refused(
    project: Project, dataset: str, yolo_dataset: str
) -> None:
    assert await detail(project, yolo_body(dataset)) == [
        {
            "loc": ["body", "dataset"],
            "msg": "dataset format 'imagefolder' does not fit ultralytics task 'detect' "
            "(use yolo-detect or yolo-segment)",
            "type": "dataset_format_mismatch",
        }
    ]
    [timm] = await detail(project, job_body(yolo_dataset))
    assert timm["loc"] == ["body", "dataset"]
    assert timm["msg"].startswith("dataset format 'yolo-detect' does not fit timm task 'classify'")
