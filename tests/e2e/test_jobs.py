"""End-to-end: REST -> NATS JetStream -> scheduler -> local pool -> runner -> timm trainer -> callbacks ->
events -> SSE, with real training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import Platform, SseEvent, job_request, sse_events, submit, wait_for_trainer

TERMINAL = {"job.succeeded", "job.failed", "job.cancelled"}


def events_until(
    platform: Platform, job_id: str, stop_at: str, last_event_id: str | None = None
) -> list[SseEvent]:
    seen = []
    with platform.client() as client:
        for event in sse_events(client, f"/v1/jobs/{job_id}/events", last_event_id):
            seen.append(event)
            if event.event == stop_at:
                break
    return seen


def test_job_trains_to_success_and_checkpoint_loads_in_plain_timm(
    platform: Platform, dataset_id: str, tmp_path: Path
) -> None:
    job = submit(platform, job_request(dataset_id, epochs=2))
    assert job["state"] == "PENDING"
    with platform.client() as client:
        events = list(sse_events(client, f"/v1/jobs/{job['id']}/events"))
        types = [event.event for event in events]
        assert types[:3] == ["job.submitted", "job.queued", "job.running"], types
        assert types[-1] == "job.succeeded"
        progress = [event.data for event in events if event.event == "job.progress"]
        assert [p["payload"]["epoch"] for p in progress] == [1, 2]
        for p in progress:
            assert {"train_loss", "val_loss", "val_accuracy"} <= set(p["payload"]["metrics"])
        for event in events:
            assert event.data["job_id"] == job["id"]
            assert event.data["trace_id"] == job["trace_id"]
            assert {"type", "state", "attempt", "time", "payload"} <= set(event.data)
        assert "job.artifact" in types

        shown = client.get(f"/v1/jobs/{job['id']}").json()
        assert shown["state"] == "SUCCEEDED"
        # The metrics history is the progress events, as series (the web page draws from it).
        history = client.get(f"/v1/jobs/{job['id']}/metrics").json()
        for name in ("train_loss", "val_loss", "val_accuracy"):
            points = [(point["epoch"], point["value"]) for point in history["series"][name]]
            assert points == [(p["payload"]["epoch"], p["payload"]["metrics"][name]) for p in progress]
        command = [sys.executable, "-m", "vtp.cli", "--data-dir", str(platform.data_dir), "jobs", "metrics"]
        table = subprocess.run(
            [*command, job["id"]], capture_output=True, text=True, check=True, timeout=60
        ).stdout.splitlines()
        assert table[0].split()[:2] == ["EPOCH", "ATTEMPT"]
        assert [line.split()[0] for line in table[1:]] == ["1", "2"]
        names = {artifact["name"] for artifact in client.get(f"/v1/jobs/{job['id']}/artifacts").json()}
        assert "model.pt" in names
        checkpoint = tmp_path / "model.pt"
        download = client.get(f"/v1/jobs/{job['id']}/artifacts/model.pt")
        assert download.status_code == 200
        checkpoint.write_bytes(download.content)

    import timm
    import torch

    model = timm.create_model("resnet18", pretrained=False, num_classes=3)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))


def test_sse_resume_with_last_event_id_has_no_gap_and_no_duplicate(
    platform: Platform, dataset_id: str
) -> None:
    job = submit(platform, job_request(dataset_id, epochs=3))
    # Disconnect mid-run, right after the first epoch, and resume from the last id seen.
    first = events_until(platform, job["id"], "job.progress")
    resumed = events_until(platform, job["id"], "job.succeeded", last_event_id=first[-1].id)
    with platform.client() as client:
        full = list(sse_events(client, f"/v1/jobs/{job['id']}/events"))
    assert [e.id for e in first + resumed] == [e.id for e in full]
    assert len({e.id for e in full}) == len(full)
    assert [e.data["version"] for e in full] == list(range(1, len(full) + 1))
    # A resume from the middle of a finished job gives exactly the rest.
    middle = len(full) // 2
    with platform.client() as client:
        rest = list(sse_events(client, f"/v1/jobs/{job['id']}/events", last_event_id=full[middle].id))
    assert [e.id for e in rest] == [e.id for e in full[middle + 1 :]]


def test_idempotent_submit_returns_the_same_job(platform: Platform, dataset_id: str) -> None:
    body = job_request(dataset_id, epochs=1, name="idempotent")
    first = submit(platform, body, key="retry-me-1")
    second = submit(platform, body, key="retry-me-1")
    assert second["id"] == first["id"]
    other = submit(platform, body, key="retry-me-2")
    assert other["id"] != first["id"]
    for job in (first, other):
        events_until(platform, job["id"], "job.succeeded")


def test_cancel_stops_the_running_trainer(platform: Platform, dataset_id: str) -> None:
    job = submit(platform, job_request(dataset_id, epochs=500))
    events_until(platform, job["id"], "job.progress")
    trainer = wait_for_trainer(job["id"], 1)
    with platform.client() as client:
        assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
        events = list(sse_events(client, f"/v1/jobs/{job['id']}/events"))
        assert events[-1].event == "job.cancelled"
        assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "CANCELLED"
        # The trainer learns it through its heartbeat answer and stops between batches.
        # Generous: CI machines are shared, and a loaded one can take a while to get there.
        trainer.wait(timeout=90)
        again = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert again.status_code == 409
        assert "error" in again.json()


def test_killed_trainer_is_retried_after_backoff_and_succeeds_on_attempt_2(
    platform: Platform, dataset_id: str
) -> None:
    job = submit(platform, job_request(dataset_id, epochs=3, max_attempts=2))
    events_until(platform, job["id"], "job.progress")
    wait_for_trainer(job["id"], 1).send_signal(signal.SIGKILL)
    with platform.client() as client:
        events = list(sse_events(client, f"/v1/jobs/{job['id']}/events"))
    types = [event.event for event in events]
    assert types[-1] == "job.succeeded", types
    retrying = next(event for event in events if event.event == "job.retrying")
    assert retrying.data["payload"]["reason"]
    assert retrying.data["attempt"] == 2
    assert events[-1].data["attempt"] == 2
    running = [event.data["attempt"] for event in events if event.event == "job.running"]
    assert running == [1, 2]


@pytest.mark.parametrize("kill", ["trainer", "runner-and-trainer"])
def test_job_fails_with_a_reason_once_max_attempts_are_spent(
    platform: Platform, dataset_id: str, kill: str
) -> None:
    job = submit(platform, job_request(dataset_id, epochs=200, max_attempts=1))
    events_until(platform, job["id"], "job.progress")
    trainer = wait_for_trainer(job["id"], 1)
    if kill == "runner-and-trainer":
        # The node is lost: nobody reports, so only the missed heartbeats tell the scheduler.
        os.kill(trainer.ppid(), signal.SIGKILL)
    trainer.send_signal(signal.SIGKILL)
    with platform.client() as client:
        events = list(sse_events(client, f"/v1/jobs/{job['id']}/events"))
        assert events[-1].event == "job.failed"
        reason = events[-1].data["payload"]["reason"]
        assert reason
        if kill == "runner-and-trainer":
            assert "heartbeat" in reason
        shown = client.get(f"/v1/jobs/{job['id']}").json()
        assert shown["state"] == "FAILED"
        assert shown["reason"] == reason
