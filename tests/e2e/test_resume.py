"""End-to-end: a trainer killed in epoch 3 of 4, after the checkpoint of epoch 2, is retried, and attempt 2
resumes from that checkpoint: it trains epochs 3 and 4 only, and the job's events say where it resumed."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import (
    Platform,
    SseEvent,
    job_request,
    sse_events,
    submit,
    upload_dataset,
    wait_for_trainer,
)
from vtp.synthetic import make_yolo_detect_archive

EPOCHS = 4
KILLED_AFTER = 2  # epochs attempt 1 reported (and checkpointed) before it is killed


def timm_job(platform: Platform, dataset_id: str, tmp_path: Path) -> dict[str, Any]:
    return job_request(dataset_id, epochs=EPOCHS, max_attempts=2)


def yolo_job(platform: Platform, dataset_id: str, tmp_path: Path) -> dict[str, Any]:
    archive = make_yolo_detect_archive(tmp_path / "detect.zip", train=16, val=4, size=64)
    return {
        "framework": "ultralytics",
        "task": "detect",
        "model": "yolo11n.yaml",
        "dataset": upload_dataset(platform, archive, "yolo-detect"),
        "pool": "local",
        "max_attempts": 2,
        "hyperparameters": {"epochs": EPOCHS, "imgsz": 64, "batch": 8, "mosaic": 0.0},
    }


def run_killing_attempt_1(platform: Platform, body: dict[str, Any]) -> list[SseEvent]:
    """Follow the job's events to its end; SIGKILL attempt 1's trainer as soon as it reports epoch 2 (whose
    checkpoint it uploaded just before): it dies early in epoch 3, long before that epoch's checkpoint."""
    job = submit(platform, body)
    framework = body["framework"]
    trainer = None
    events = []
    with platform.client() as client:
        for event in sse_events(client, f"/v1/jobs/{job['id']}/events"):
            events.append(event)
            if event.event == "job.running" and event.data["attempt"] == 1:
                trainer = wait_for_trainer(job["id"], 1, framework)
            if event.event == "job.progress" and event.data["attempt"] == 1:
                if event.data["payload"]["epoch"] == KILLED_AFTER:
                    assert trainer is not None
                    trainer.send_signal(signal.SIGKILL)
    return events


def of_attempt(events: list[SseEvent], attempt: int, event_type: str) -> list[dict[str, Any]]:
    return [e.data["payload"] for e in events if e.event == event_type and e.data["attempt"] == attempt]


@pytest.mark.parametrize(("framework", "make_job"), [("timm", timm_job), ("ultralytics", yolo_job)])
def test_a_killed_job_resumes_on_attempt_2_at_the_epoch_after_its_last_checkpoint(
    platform: Platform, dataset_id: str, tmp_path: Path, framework: str, make_job: Any
) -> None:
    events = run_killing_attempt_1(platform, make_job(platform, dataset_id, tmp_path))
    assert events[-1].event == "job.succeeded", [(e.event, e.data["payload"]) for e in events[-3:]]
    assert events[-1].data["attempt"] == 2
    retrying = next(e for e in events if e.event == "job.retrying")
    assert retrying.data["payload"]["reason"] == "trainer exited with signal SIGKILL"

    # Attempt 1 trained epochs 1-2 and uploaded their checkpoint; attempt 2 trained only epochs 3-4.
    assert [p["epoch"] for p in of_attempt(events, 1, "job.progress")] == [1, 2]
    assert "last.pt" in {a["name"] for a in of_attempt(events, 1, "job.artifact")}
    resumed = of_attempt(events, 2, "job.progress")
    assert [(p["epoch"], p["epochs"]) for p in resumed] == [(3, EPOCHS), (4, EPOCHS)]
    assert [p.get("resumed_from_epoch") for p in resumed] == [KILLED_AFTER, None]
    assert {
        "level": "info",
        "message": "resumed from epoch 2 of 4 (last.pt of an earlier attempt)",
    } in of_attempt(events, 2, "job.log")
    assert events[-1].data["payload"]["metrics"]["epochs"] == EPOCHS

    job_id = events[-1].data["job_id"]
    with platform.client() as client:
        names = {artifact["name"] for artifact in client.get(f"/v1/jobs/{job_id}/artifacts").json()}
    assert names >= (
        {"model.pt", "classes.json", "last.pt"} if framework == "timm" else {"best.pt", "last.pt"}
    )
