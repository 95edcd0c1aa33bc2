"""End-to-end: SIGTERM to a running job's runner (a Kubernetes eviction, a spot reclaim) after epoch 2 of 6.
The trainer saves its checkpoint and reports `preempted`; the job goes back to QUEUED at attempt 1
(`job.preempted`, `job.queued`), a new runner resumes it after the last epoch it finished, and it succeeds
at attempt 1: the preemption cost no attempt. Both frameworks. Prints the two delays the issue asks for."""

from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.helpers import Platform, SseEvent, sse_events, submit, wait_for_trainer
from tests.e2e.test_resume import timm_job, yolo_job

EPOCHS = 6
PREEMPTED_AFTER = 2  # epochs reported before the SIGTERM (the trainer may have finished another by then)


def run_preempting_once(platform: Platform, body: dict[str, Any]) -> tuple[list[SseEvent], float]:
    """Follow the job to its end; SIGTERM the runner of its first run once it reported epoch 2. Returns
    the events and when the signal went (wall clock)."""
    job = submit(platform, body)
    framework = body["framework"]
    runner: psutil.Process | None = None
    sent_at = 0.0
    events = []
    with platform.client() as client:
        for event in sse_events(client, f"/v1/jobs/{job['id']}/events", timeout=240):
            events.append(event)
            if event.event == "job.running" and runner is None:
                runner = wait_for_trainer(job["id"], 1, framework).parent()
                assert runner is not None
                assert "trainers.runner" in " ".join(runner.cmdline())
            progress = event.event == "job.progress" and event.data["payload"]["epoch"] == PREEMPTED_AFTER
            if progress and not sent_at:
                assert runner is not None
                sent_at = time.time()
                runner.send_signal(signal.SIGTERM)
    return events, sent_at


def at(event: SseEvent) -> float:
    return datetime.fromisoformat(event.data["time"]).timestamp()


@pytest.mark.parametrize(("framework", "make_job"), [("timm", timm_job), ("ultralytics", yolo_job)])
def test_a_preempted_job_resumes_at_the_same_attempt(
    platform: Platform, dataset_id: str, tmp_path: Path, framework: str, make_job: Any
) -> None:
    body = make_job(platform, dataset_id, tmp_path)
    body["hyperparameters"]["epochs"] = EPOCHS
    events, sent_at = run_preempting_once(platform, body)
    types = [e.event for e in events]
    assert types[-1] == "job.succeeded", [(e.event, e.data["payload"]) for e in events[-4:]]
    assert {e.data["attempt"] for e in events} == {1}, "the preemption must cost no attempt"
    assert "job.retrying" not in types

    preempted_index = types.index("job.preempted")
    preempted = events[preempted_index]
    assert preempted.data["state"] == "QUEUED"
    assert preempted.data["payload"]["preemptions"] == 1
    reason = preempted.data["payload"]["reason"]
    assert reason.startswith("preempted by SIGTERM after epoch "), reason
    saved = int(reason.removeprefix("preempted by SIGTERM after epoch ").split()[0].rstrip(";"))
    assert PREEMPTED_AFTER <= saved < EPOCHS
    assert types[preempted_index + 1] == "job.queued"

    # The epochs before, then the resumed run trains only what was left, each epoch reported once.
    epochs = [e.data["payload"]["epoch"] for e in events if e.event == "job.progress"]
    assert epochs == list(range(1, EPOCHS + 1)), epochs
    resumed = next(e for e in events[preempted_index:] if e.event == "job.progress")
    assert resumed.data["payload"].get("resumed_from_epoch") == saved

    with platform.client() as client:
        job = client.get(f"/v1/jobs/{events[0].data['job_id']}").json()
    assert (job["state"], job["attempt"], job["preemptions"]) == ("SUCCEEDED", 1, 1)

    back_in_queue = at(events[preempted_index + 1]) - sent_at
    to_resumed_epoch = at(resumed) - at(events[preempted_index + 1])
    print(
        f"\n{framework}: SIGTERM -> QUEUED {back_in_queue:.2f} s; QUEUED -> resumed epoch "
        f"{resumed.data['payload']['epoch']} reported {to_resumed_epoch:.2f} s"
    )
