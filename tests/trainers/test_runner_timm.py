"""The runner and the timm trainer for real: a DispatchJob published to a pool, a real events service,
real training of resnet18 on generated shapes, reports in VTP_REPORTS, exports, and cancellation between
batches."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid

import httpx
import numpy as np
import onnxruntime
import timm
import torch

from contracts import subjects
from contracts.dispatch import DispatchJob
from contracts.jobs import Hyperparameters, TimmSpec
from contracts.reports import ArtifactReport, DoneReport, LogReport, ProgressReport
from messaging import nats as common_nats
from services.common import storage
from services.events.testing import stored_reports
from tests.trainers.exported import assert_exported, load_torchscript
from tests.trainers.job_events import publish_cancelled
from trainers import jsz

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def dispatch(platform, pool: str, **hyperparameters: object) -> DispatchJob:
    job_id = uuid.uuid4().hex
    params = {"epochs": 2, "batch_size": 12, "image_size": 64, "learning_rate": 0.003} | hyperparameters
    return DispatchJob(
        job_id=job_id,
        attempt=1,
        pool=pool,
        spec=TimmSpec(
            framework="timm", task="classify", model="resnet18", hyperparameters=Hyperparameters(**params)
        ),
        callback_url=f"{platform.events_url}/v1/callbacks",
        callback_token=platform.token(job_id),
        dataset_url=platform.signer.sign(platform.dataset_key, "GET", 600),
        dataset_format="imagefolder",
        trace_id=TRACEPARENT.split("-")[1],
        traceparent=TRACEPARENT,
    )


async def publish(js, job: DispatchJob) -> None:
    await common_nats.ensure_pool_consumer(js, job.pool)
    await js.publish(
        subjects.dispatch_subject(job.pool),
        job.model_dump_json().encode(),
        stream=subjects.DISPATCH_STREAM,
        headers={"Nats-Msg-Id": f"{job.job_id}:{job.attempt}"},
    )


async def start_runner(platform, pool: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "NATS_URL": platform.nats_url,
        "VTP_POOL": pool,
        "VTP_HEARTBEAT_INTERVAL": "0.2",
        "VTP_RUNNER_FETCH_TIMEOUT": "1",
        "DATABASE_URL": "postgresql://secret@nowhere/db",
    }
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "trainers.runner", env=env)


def lag(platform, pool: str) -> int:
    with httpx.Client() as client:
        return jsz.read_lag(
            client, platform.monitor_url, subjects.DISPATCH_STREAM, subjects.pool_consumer(pool)
        )


def of_kind(found, kind):
    return [report for _, report in found if isinstance(report, kind)]


async def test_runner_trains_timm_and_reports_per_epoch(platform, js, pool):
    job = dispatch(platform, pool, epochs=2)
    await publish(js, job)
    runner = await start_runner(platform, pool)
    assert await asyncio.wait_for(runner.wait(), 120) == 0

    found = await stored_reports(js, job.job_id)
    assert {report.attempt for _, report in found} == {1}
    assert {report.trace_id for _, report in found} == {TRACEPARENT.split("-")[1]}
    progress = of_kind(found, ProgressReport)
    assert [(p.epoch, p.epochs) for p in progress] == [(1, 2), (2, 2)]
    for report in progress:
        assert set(report.metrics) == {"train_loss", "val_loss", "val_accuracy"}
    artifact_reports = of_kind(found, ArtifactReport)
    # last.pt (model, optimizer, epoch: what a retry resumes from) after every epoch, then the results.
    assert [a.name for a in artifact_reports] == ["last.pt", "last.pt", "model.pt", "classes.json"]
    artifacts = {a.name: a for a in artifact_reports}
    [done] = of_kind(found, DoneReport)
    assert done.status == "succeeded"
    assert done.metrics["epochs"] == 2
    assert found[-1][1] == done

    model_path = platform.artifact_path(job.job_id, "model.pt")
    assert model_path.stat().st_size == artifacts["model.pt"].size
    classes = json.loads(platform.artifact_path(job.job_id, "classes.json").read_text())
    assert len(classes) == 3
    model = timm.create_model("resnet18", pretrained=False, num_classes=len(classes))
    model.load_state_dict(torch.load(model_path))
    assert lag(platform, pool) == 0  # acked


async def test_exports_asked_for_are_artifacts_that_run(platform, js, pool):
    job = dispatch(platform, pool, epochs=1, image_size=32)
    spec = job.spec.model_copy(update={"export": ["onnx", "torchscript"]})
    await publish(js, job.model_copy(update={"spec": spec}))
    runner = await start_runner(platform, pool)
    assert await asyncio.wait_for(runner.wait(), 120) == 0
    await assert_exported(js, job.job_id, ["model.onnx", "model.torchscript"])

    images = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    onnx_model = onnxruntime.InferenceSession(str(platform.artifact_path(job.job_id, "model.onnx")))
    [logits] = onnx_model.run(["logits"], {"images": images})
    assert logits.shape == (2, 3)
    scripted = load_torchscript(platform.artifact_path(job.job_id, "model.torchscript"))
    with torch.no_grad():
        np.testing.assert_allclose(scripted(torch.from_numpy(images)).numpy(), logits, rtol=1e-4, atol=1e-4)


async def test_a_retry_with_no_checkpoint_to_resume_starts_at_epoch_1_and_says_so(platform, js, pool):
    job = dispatch(platform, pool, epochs=1, image_size=32)
    job = job.model_copy(
        update={
            "attempt": 2,
            "callback_token": platform.token(job.job_id, attempt=2),
            # Attempt 1 died before it finished an epoch: the job has no last.pt, its URL answers 404.
            "resume_url": platform.signer.sign(storage.artifact_key(job.job_id, "last.pt"), "GET", 600),
        }
    )
    await publish(js, job)
    runner = await start_runner(platform, pool)
    assert await asyncio.wait_for(runner.wait(), 120) == 0

    found = await stored_reports(js, job.job_id)
    # The trainer's own log lines (its captured output comes in batches: `lines`).
    assert [(r.level, r.message) for r in of_kind(found, LogReport) if r.lines is None] == [
        ("warning", "not resuming: no earlier attempt finished an epoch (no last.pt); starting at epoch 1")
    ]
    assert [(p.epoch, p.resumed_from_epoch) for p in of_kind(found, ProgressReport)] == [(1, None)]
    [done] = of_kind(found, DoneReport)
    assert done.status == "succeeded"


async def test_cancel_stops_the_trainer_between_batches(platform, js, pool):
    job = dispatch(platform, pool, epochs=200, batch_size=6, image_size=32)
    await publish(js, job)
    runner = await start_runner(platform, pool)
    deadline = time.monotonic() + 90
    while not of_kind(await stored_reports(js, job.job_id), ProgressReport):
        assert time.monotonic() < deadline, "no progress report"
        assert runner.returncode is None
        await asyncio.sleep(0.1)
    await publish_cancelled(js, job.job_id)
    assert await asyncio.wait_for(runner.wait(), 60) == 0

    found = await stored_reports(js, job.job_id)
    [done] = of_kind(found, DoneReport)
    assert done.status == "cancelled"
    assert done.reason == "job is CANCELLED"
    assert len(of_kind(found, ProgressReport)) < 200
    # Only the checkpoints of the epochs it finished: no model.pt of a cancelled job.
    assert {a.name for a in of_kind(found, ArtifactReport)} == {"last.pt"}
    assert lag(platform, pool) == 0


async def test_runner_does_not_start_a_cancelled_job(platform, js, pool):
    job = dispatch(platform, pool)
    await publish_cancelled(js, job.job_id)
    await publish(js, job)
    # The read model catches up within moments; the runner's first heartbeat then says stop.
    await asyncio.sleep(1.0)
    runner = await start_runner(platform, pool)
    assert await asyncio.wait_for(runner.wait(), 30) == 0
    found = await stored_reports(js, job.job_id)
    assert [subject for subject, _ in found] == [subjects.report_subject(job.job_id, "heartbeat")]
    assert lag(platform, pool) == 0


async def test_trainer_failure_is_reported_once(platform, js, pool):
    job = dispatch(platform, pool)
    job = job.model_copy(update={"dataset_format": "coco"})
    await publish(js, job)
    runner = await start_runner(platform, pool)
    assert await asyncio.wait_for(runner.wait(), 60) == 1
    found = await stored_reports(js, job.job_id)
    [done] = of_kind(found, DoneReport)
    assert done.status == "failed"
    assert done.reason == (
        "DatasetUnfit: dataset format 'coco' does not fit timm task 'classify' (use imagefolder)"
    )
    assert done.retryable is False  # the same dataset fails every attempt
    assert lag(platform, pool) == 0


async def test_an_empty_pool_exits_at_once(platform, js, pool):
    await common_nats.ensure_pool_consumer(js, pool)  # the admin's (`vtp pools prepare`): runners make none
    runner = await start_runner(platform, pool)
    assert await asyncio.wait_for(runner.wait(), 30) == 0


async def test_pool_runs_a_job_and_sigterm_travels_down_to_the_trainer(platform, js, pool):
    job = dispatch(platform, pool, epochs=200, batch_size=6, image_size=32)
    await publish(js, job)
    env = {
        **os.environ,
        "NATS_URL": platform.nats_url,
        "NATS_MONITOR_URL": platform.monitor_url,
        "VTP_POOL": pool,
        "VTP_POOL_CONCURRENCY": "2",
        "VTP_POOL_POLL_INTERVAL": "0.2",
        "VTP_HEARTBEAT_INTERVAL": "0.2",
    }
    local_pool = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from trainers.pool import main; main()", env=env
    )
    deadline = time.monotonic() + 90
    while not of_kind(await stored_reports(js, job.job_id), ProgressReport):
        assert time.monotonic() < deadline, "no progress report"
        assert local_pool.returncode is None
        await asyncio.sleep(0.1)
    local_pool.send_signal(signal.SIGTERM)  # pool -> runner -> trainer
    assert await asyncio.wait_for(local_pool.wait(), 30) == 0
    found = await stored_reports(js, job.job_id)
    [done] = of_kind(found, DoneReport)
    # A preemption (tests/trainers/test_preemption.py): the job runs again from its last epoch's last.pt.
    completed = len(of_kind(found, ProgressReport))
    assert (done.status, done.reason) == ("preempted", f"preempted by SIGTERM after epoch {completed}")
    assert lag(platform, pool) == 0
