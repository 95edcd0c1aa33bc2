"""The Ultralytics trainer for real: `python -m trainers.ultralytics` started with the trainer environment the
runner gives it, a real events service, real YOLO training on generated data, reports in VTP_REPORTS,
artifacts in storage, and cancellation between batches.

The trainer is started directly rather than through `trainers.runner`, so a test controls its environment
(tests/e2e/test_yolo.py runs YOLO jobs through the whole platform). The environment is built the runner's way
(`trainers.runner.PASSTHROUGH`), so nothing else differs.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile

import numpy as np
import onnxruntime
import torch

from contracts.reports import ArtifactReport, DoneReport, ProgressReport
from services.events.testing import stored_reports
from tests.plain_ultralytics import validate_with_plain_ultralytics
from tests.trainers.exported import assert_exported, load_torchscript
from tests.trainers.job_events import publish_cancelled
from trainers.runner import PASSTHROUGH, PASSTHROUGH_PREFIXES

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
YOLO_ARTIFACTS = {"best.pt", "last.pt", "results.csv", "args.yaml"}
BOX_METRICS = {"precision", "recall", "mAP50", "mAP50-95"}


def trainer_environ(platform, job_id: str, dataset_key: str, dataset_format: str, spec: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k in PASSTHROUGH or k.startswith(PASSTHROUGH_PREFIXES)}
    return env | {
        "PYTHONUNBUFFERED": "1",
        "VTP_JOB_ID": job_id,
        "VTP_ATTEMPT": "1",
        "VTP_CALLBACK_URL": f"{platform.events_url}/v1/callbacks",
        "VTP_CALLBACK_TOKEN": platform.token(job_id),
        "VTP_JOB_SPEC": json.dumps({"framework": "ultralytics", **spec}),
        "VTP_DATASET_URL": platform.signer.sign(dataset_key, "GET", 600),
        "VTP_DATASET_FORMAT": dataset_format,
        "VTP_HEARTBEAT_INTERVAL": "0.2",
        "TRACEPARENT": TRACEPARENT,
    }


async def start_trainer(platform, dataset_key: str, dataset_format: str, **spec) -> tuple[str, object]:
    job_id = uuid.uuid4().hex
    env = trainer_environ(platform, job_id, dataset_key, dataset_format, spec)
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "trainers.ultralytics", env=env)
    return job_id, process


def of_kind(found, kind):
    return [report for _, report in found if isinstance(report, kind)]


async def finished(js, job_id: str) -> tuple[list[ProgressReport], dict[str, ArtifactReport], DoneReport]:
    found = await stored_reports(js, job_id)
    assert {report.trace_id for _, report in found} == {TRACEPARENT.split("-")[1]}
    [done] = of_kind(found, DoneReport)
    assert found[-1][1] == done
    artifacts = {a.name: a for a in of_kind(found, ArtifactReport)}
    return of_kind(found, ProgressReport), artifacts, done


async def test_detect_job_reports_each_epoch_and_its_best_pt_validates(platform, js, yolo_datasets, tmp_path):
    dataset = yolo_datasets["yolo-detect"]
    started = time.monotonic()
    job_id, trainer = await start_trainer(
        platform,
        dataset.key,
        dataset.format,
        task="detect",
        model="yolo11n.yaml",
        hyperparameters={"epochs": 2, "imgsz": 64, "batch": 8, "mosaic": 0.0, "seed": 0},
    )
    assert await asyncio.wait_for(trainer.wait(), 120) == 0
    elapsed = time.monotonic() - started

    progress, artifacts, done = await finished(js, job_id)
    assert [(p.epoch, p.epochs) for p in progress] == [(1, 2), (2, 2)]
    for report in progress:
        assert BOX_METRICS | {"train_box_loss", "train_cls_loss", "train_dfl_loss"} <= set(report.metrics)
        assert all(isinstance(v, float) for v in report.metrics.values())
    assert set(artifacts) == YOLO_ARTIFACTS
    assert done.status == "succeeded"
    assert BOX_METRICS <= set(done.metrics)
    assert done.metrics["epochs"] == 2
    best = platform.artifact_path(job_id, "best.pt")
    assert best.stat().st_size == artifacts["best.pt"].size
    assert platform.artifact_path(job_id, "last.pt").stat().st_size == artifacts["last.pt"].size
    assert len(platform.artifact_path(job_id, "results.csv").read_text().splitlines()) == 3  # header + 2

    checked = validate_with_plain_ultralytics(best, dataset.archive, tmp_path)
    assert checked["task"] == "detect"
    assert checked["names"] == {"0": "box_00", "1": "ellipse_01"}
    assert "metrics/mAP50(B)" in checked["results"]
    print(f"detect job: {elapsed:.1f}s")


async def test_classify_job_reports_top1_and_top5(platform, js):
    job_id, trainer = await start_trainer(
        platform,
        platform.dataset_key,
        "imagefolder",
        task="classify",
        model="yolo11n-cls.yaml",
        hyperparameters={"epochs": 2, "imgsz": 32, "batch": 8},
    )
    assert await asyncio.wait_for(trainer.wait(), 120) == 0
    progress, artifacts, done = await finished(js, job_id)
    assert [(p.epoch, p.epochs) for p in progress] == [(1, 2), (2, 2)]
    for report in progress:
        assert {"top1", "top5", "train_loss"} <= set(report.metrics)
        assert 0.0 <= report.metrics["top1"] <= report.metrics["top5"] <= 1.0
    assert YOLO_ARTIFACTS == set(artifacts)
    assert done.status == "succeeded"
    assert {"top1", "top5"} <= set(done.metrics)


async def test_segment_job_trains_an_epoch(platform, js, yolo_datasets):
    dataset = yolo_datasets["yolo-segment"]
    job_id, trainer = await start_trainer(
        platform,
        dataset.key,
        dataset.format,
        task="segment",
        model="yolo11n-seg.yaml",
        hyperparameters={"epochs": 1, "imgsz": 64, "batch": 8, "mosaic": 0.0},
    )
    assert await asyncio.wait_for(trainer.wait(), 120) == 0
    progress, artifacts, done = await finished(js, job_id)
    [report] = progress
    assert (report.epoch, report.epochs) == (1, 1)
    assert BOX_METRICS | {f"{name}_mask" for name in BOX_METRICS} | {"train_seg_loss"} <= set(report.metrics)
    assert {"best.pt", "last.pt"} <= set(artifacts)
    assert done.status == "succeeded"
    assert "mAP50_mask" in done.metrics


async def test_exports_asked_for_are_artifacts_that_run(platform, js, yolo_datasets):
    dataset = yolo_datasets["yolo-detect"]
    job_id, trainer = await start_trainer(
        platform,
        dataset.key,
        dataset.format,
        task="detect",
        model="yolo11n.yaml",
        hyperparameters={"epochs": 1, "imgsz": 64, "batch": 8, "mosaic": 0.0},
        export=["onnx", "torchscript"],
    )
    assert await asyncio.wait_for(trainer.wait(), 120) == 0
    await assert_exported(js, job_id, ["best.onnx", "best.torchscript"])

    # Ultralytics' raw detect head: per anchor 4 box values and a score per class (2); 64 px at strides 8,
    # 16 and 32 make 8x8 + 4x4 + 2x2 = 84 anchors.
    images = np.zeros((1, 3, 64, 64), dtype=np.float32)
    session = onnxruntime.InferenceSession(str(platform.artifact_path(job_id, "best.onnx")))
    [given] = session.get_inputs()
    assert (given.name, given.shape) == ("images", [1, 3, 64, 64])
    [output] = session.run(None, {"images": images})
    assert output.shape == (1, 4 + 2, 84)
    scripted = load_torchscript(platform.artifact_path(job_id, "best.torchscript"))
    with torch.no_grad():
        scripted_output = scripted(torch.from_numpy(images))
    np.testing.assert_allclose(scripted_output.numpy(), output, rtol=1e-3, atol=1e-3)


async def test_cancel_stops_between_batches_and_keeps_the_last_checkpoint(platform, js, yolo_datasets):
    dataset = yolo_datasets["yolo-detect"]
    job_id, trainer = await start_trainer(
        platform,
        dataset.key,
        dataset.format,
        task="detect",
        model="yolo11n.yaml",
        hyperparameters={"epochs": 200, "imgsz": 32, "batch": 4, "mosaic": 0.0},
    )
    deadline = time.monotonic() + 90
    while not of_kind(await stored_reports(js, job_id), ProgressReport):
        assert time.monotonic() < deadline, "no progress report"
        assert trainer.returncode is None
        await asyncio.sleep(0.1)
    await publish_cancelled(js, job_id)
    assert await asyncio.wait_for(trainer.wait(), 60) == 0

    progress, artifacts, done = await finished(js, job_id)
    assert done.status == "cancelled"
    assert done.reason == "job is CANCELLED"
    assert 1 <= len(progress) < 200
    assert [p.epoch for p in progress] == list(range(1, len(progress) + 1))
    assert done.metrics["epochs"] == len(progress)
    assert "last.pt" in artifacts
    assert platform.artifact_path(job_id, "last.pt").stat().st_size == artifacts["last.pt"].size


async def test_a_refused_spec_fails_the_job_naming_the_field(platform, js, yolo_datasets):
    dataset = yolo_datasets["yolo-detect"]
    job_id, trainer = await start_trainer(
        platform,
        dataset.key,
        dataset.format,
        task="detect",
        model="yolo11n.yaml",
        hyperparameters={"epochs": 1, "project": "/tmp/elsewhere"},
    )
    assert await asyncio.wait_for(trainer.wait(), 60) == 1
    _, artifacts, done = await finished(js, job_id)
    assert done.status == "failed"
    assert done.reason == "invalid job spec: hyperparameters.project: set by the platform, not by a job"
    assert done.retryable is False
    assert artifacts == {}


async def test_a_dataset_of_the_wrong_format_fails_the_job(platform, js):
    job_id, trainer = await start_trainer(
        platform, platform.dataset_key, "imagefolder", task="detect", model="yolo11n.yaml"
    )
    assert await asyncio.wait_for(trainer.wait(), 60) == 1
    _, _, done = await finished(js, job_id)
    assert done.status == "failed"
    assert done.reason == (
        "DatasetError: dataset format 'imagefolder' does not fit ultralytics task 'detect' "
        "(use yolo-detect or yolo-segment)"
    )
    assert done.retryable is False


NO_NETWORK = """
import json, shutil, socket, sys, threading
from pathlib import Path

attempts = []
LOCAL = ("127.", "::1", "localhost")


def _refuse(what, host):
    if isinstance(host, str) and host.startswith(LOCAL):
        return
    attempts.append(f"{what} {host}")
    raise OSError(f"network access refused in this test: {what} {host}")


original_connect, original_getaddrinfo = socket.socket.connect, socket.getaddrinfo


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse("connect", address[0])
    return original_connect(self, address)


def getaddrinfo(host, *args, **kwargs):
    _refuse("getaddrinfo", host)
    return original_getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo

# Installs (Ultralytics pip-installs a missing requirement) are recorded, and one is provoked: onnxslim, which
# the ONNX export checks for, looks missing.
import importlib.metadata, subprocess

installs = []
original_popen_init, original_version = subprocess.Popen.__init__, importlib.metadata.version


def popen_init(self, args, *rest, **kwargs):
    if "install" in (args if isinstance(args, (list, tuple)) else str(args).split()):
        installs.append(" ".join(map(str, args)) if isinstance(args, (list, tuple)) else args)
    return original_popen_init(self, args, *rest, **kwargs)


def version(name):
    if name == "onnxslim":
        raise importlib.metadata.PackageNotFoundError(name)
    return original_version(name)


subprocess.Popen.__init__, importlib.metadata.version = popen_init, version

from trainers.ultralytics import data, offline
work = Path(sys.argv[1])
offline.prepare(work / "config")
offline.configure()
from trainers.ultralytics import training
from trainers.ultralytics.resume import NotResumable, read_resume_point
from contracts.ultralytics import UltralyticsSpec

spec = UltralyticsSpec(framework="ultralytics", task="detect", model="yolov8n.yaml",
                       hyperparameters={"epochs": 2, "imgsz": 32, "batch": 8})
dataset = data.yolo_data(work / "dataset")
epochs, checkpoints = [], []
keep = lambda path, _: checkpoints.append(shutil.copy(path, work / f"checkpoint{len(checkpoints) + 1}.pt"))
outcome = training.train(spec, dataset, work / "runs", threading.Event(),
                         lambda epoch, total, metrics, seconds: epochs.append(epoch), on_checkpoint=keep)
try:
    read_resume_point(outcome.save_dir / "weights" / "last.pt")
except NotResumable as exc:
    final = str(exc)
point = read_resume_point(Path(checkpoints[0]))
resumed_epochs = []
resumed = training.train(spec, dataset, work / "resumed", threading.Event(),
                         lambda epoch, total, metrics, seconds: resumed_epochs.append(epoch), resume=point)
# Starting weights: the first run's best.pt is in the model before its first step.
import torch
from ultralytics.utils.callbacks.base import default_callbacks
from ultralytics.utils.patches import torch_load

before_first_step = []
default_callbacks["on_train_start"].append(
    lambda trainer: before_first_step.append(trainer.model.model[0].conv.weight.detach().cpu().clone()))
best = outcome.save_dir / "weights" / "best.pt"
one_epoch = spec.model_copy(update={"hyperparameters": {**spec.hyperparameters, "epochs": 1}})
training.train(one_epoch, dataset, work / "from-weights", threading.Event(), lambda *report: None,
               weights=best)
given = torch_load(best, map_location="cpu")["model"].model[0].conv.weight.float()
from trainers.ultralytics import export
exported = [export.exporter(best)(export_format).name for export_format in ("onnx", "torchscript")]
during = list(attempts)
try:  # the guard itself works
    socket.getaddrinfo("example.com", 443)
except OSError:
    pass
print(json.dumps({
    "attempts": during,
    "epochs": epochs,
    "best": (outcome.save_dir / "weights" / "best.pt").is_file(),
    "checkpoints": len(checkpoints),
    "final_last_pt": final,
    "resumed_from": [point.epoch, point.epochs],
    "resumed_epochs": resumed_epochs,
    "resumed_done": resumed.epochs_done,
    "resumed_best": (resumed.save_dir / "weights" / "best.pt").is_file(),
    "resumed_results": len((resumed.save_dir / "results.csv").read_text().splitlines()),
    "starts_from_weights": torch.equal(before_first_step[0], given),
    "exported": exported,
    "installs": installs,
    "guarded": attempts[len(during):],
}))
"""


def test_training_and_resuming_touch_no_network(yolo_datasets, tmp_path):
    """Every non-loopback connect or name lookup in the trainer process is refused and recorded, while it
    trains 2 epochs (a checkpoint after the first), then resumes from that checkpoint: epoch 2 again, in a
    run folder of its own that ends with best.pt and the results of both epochs; then trains from the first
    run's best.pt as starting weights: they are the model's before its first step; then exports best.pt to
    ONNX and TorchScript, installing nothing (not even onnxslim, which it is made to believe missing)."""
    with zipfile.ZipFile(yolo_datasets["yolo-detect"].archive) as zf:
        zf.extractall(tmp_path / "dataset")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_")}
    result = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "attempts": [],
        "epochs": [1, 2],
        "best": True,
        "checkpoints": 1,  # the final epoch's last.pt is uploaded at the end, its optimizer stripped
        "final_last_pt": "holds no training state",
        "resumed_from": [1, 2],
        "resumed_epochs": [2],
        "resumed_done": 2,
        "resumed_best": True,
        "resumed_results": 3,  # header, epoch 1 from the checkpoint, epoch 2
        "starts_from_weights": True,
        "exported": ["best.onnx", "best.torchscript"],
        "installs": [],
        "guarded": ["getaddrinfo example.com"],
    }
    assert (tmp_path / "config" / "Ultralytics" / "settings.json").is_file()
