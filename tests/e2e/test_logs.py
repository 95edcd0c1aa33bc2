"""End-to-end: a job's logs are its real trainer's output (REST -> scheduler -> local pool -> runner capturing
a real timm trainer -> events -> scheduler -> VTP_EVENTS -> `GET /v1/jobs/{id}/logs` and `vtp jobs logs`),
a failure's traceback is in them, and a trainer that dies without a word fails with its last lines of
stderr as the end of the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.e2e.helpers import Platform, job_request, sse_events, submit, wait_for_trainer


def tiny(dataset_id: str, epochs: int, **overrides: object) -> dict:
    hyperparameters = {"epochs": epochs, "batch_size": 8, "image_size": 32, "learning_rate": 0.001}
    return job_request(dataset_id, hyperparameters=hyperparameters, **overrides)


def ended(platform: Platform, job_id: str) -> dict:
    """The job once it has ended (its SSE stream ends with its terminal event)."""
    with platform.client() as client:
        for _ in sse_events(client, f"/v1/jobs/{job_id}/events"):
            pass
        return dict(client.get(f"/v1/jobs/{job_id}").json())


def logs(platform: Platform, job_id: str, **params: object) -> list[str]:
    with platform.client() as client:
        response = client.get(f"/v1/jobs/{job_id}/logs", params=params)
    assert response.status_code == 200, response.text
    return response.text.splitlines()


def vtp(platform: Platform, *args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VTP_API_URL", "VTP_API_KEY")}
    command = [sys.executable, "-m", "vtp.cli", "--data-dir", str(platform.data_dir), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.splitlines()


def test_a_timm_jobs_logs_are_its_trainers_output(platform: Platform, dataset_id: str) -> None:
    job = submit(platform, tiny(dataset_id, 2))
    assert ended(platform, job["id"])["state"] == "SUCCEEDED"

    lines = logs(platform, job["id"])
    # The trainer's own log records (JSON on its stderr) read as its text formatter writes them.
    assert any("INFO    trainers.timm.training: training resnet18 on cpu" in line for line in lines), lines
    assert any("trainers.resume: epoch 2/2" in line for line in lines), lines
    assert not [line for line in lines if line.startswith("{")]
    assert not [line for line in lines if "vtp-output-barrier" in line]
    assert logs(platform, job["id"], tail=3) == lines[-3:]
    assert vtp(platform, "jobs", "logs", job["id"], "--tail", "3") == lines[-3:]
    assert vtp(platform, "jobs", "logs", job["id"], "-f") == lines  # it has ended: all of it, then exit


def test_a_failures_traceback_is_in_its_logs(platform: Platform, dataset_id: str) -> None:
    """The trainer reports the failure itself; the output it wrote just before (the traceback) reached the
    job first."""
    job = submit(platform, tiny(dataset_id, 1, model="no_such_model", max_attempts=1))
    failed = ended(platform, job["id"])
    assert failed["reason"].startswith("RuntimeError: Unknown model (no_such_model)")
    stderr = logs(platform, job["id"], stream="stderr")
    assert "Traceback (most recent call last):" in stderr
    assert "RuntimeError: Unknown model (no_such_model)" in stderr


def test_a_trainer_that_dies_fails_with_its_last_lines_of_stderr(platform: Platform, dataset_id: str) -> None:
    job = submit(platform, tiny(dataset_id, 200, max_attempts=1))
    trainer = wait_for_trainer(job["id"], 1)
    deadline = time.monotonic() + 60
    while not any("epoch 1/200" in line for line in logs(platform, job["id"])):
        assert time.monotonic() < deadline, "no epoch in the job's logs"
        time.sleep(0.2)
    trainer.send_signal(signal.SIGSEGV)  # a crash in native code: the trainer says nothing more

    failed = ended(platform, job["id"])
    assert failed["state"] == "FAILED"
    head, _, tail = failed["reason"].partition("\n")
    assert head == "trainer exited with signal SIGSEGV; the last lines of its stderr:"
    stderr = [line for line in logs(platform, job["id"], stream="stderr") if line.strip()]
    shown = tail.splitlines()
    # The reason's lines are the end of the job's stderr (its first one shortened, when they run long).
    assert shown[1:] == stderr[len(stderr) - len(shown) + 1 :]
    assert stderr[len(stderr) - len(shown)].endswith(shown[0].lstrip("…"))
