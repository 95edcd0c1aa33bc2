"""`python -m trainers.ultralytics`: read the trainer environment, fetch the dataset (and on a retry the job's
last checkpoint, to resume from), train a YOLO model from its YAML, upload `last.pt` after every epoch, then
`best.pt`, `last.pt`, `results.csv`, `args.yaml` and the exports the spec asks for, report done.
Exit 0 when succeeded, cancelled or preempted, 1 on failure.

Preempted (SIGTERM, trainers/preemption.py), training stops at the next batch, Ultralytics' last.pt of the
latest epoch completed is uploaded if it was not yet (within the grace), and nothing else: the next run
resumes from it and makes the rest. After the last epoch a SIGTERM stops nothing: the final validation,
uploads and exports go on, and the job succeeds if they end within the grace (else the watchdog reports the
preemption, and the next run trains the last epoch again from the checkpoint before it)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from contracts.jobs import dataset_mismatch
from contracts.ultralytics import UltralyticsSpec
from trainers.callbacks import CallbackClient
from trainers.datasets import download, safe_extract
from trainers.env import TrainerEnv
from trainers.exports import export_all
from trainers.heartbeat import Heartbeat
from trainers.outcome import Result, run_trainer, stopped
from trainers.resume import Progress, resume_point
from trainers.ultralytics import data, offline
from trainers.ultralytics.resume import read_resume_point
from trainers.weights import fetch_weights

log = logging.getLogger("trainers.ultralytics")

# Uploaded in this order, those that exist; paths relative to the run folder.
ARTIFACTS = ("weights/best.pt", "weights/last.pt", "results.csv", "args.yaml")


def _dataset(env: TrainerEnv[UltralyticsSpec], work: Path) -> Path:
    if problem := dataset_mismatch(env.spec, env.dataset_format):
        raise data.DatasetError(problem)
    archive = download(env.dataset_url, work / "dataset.archive")
    root = safe_extract(archive, work / "dataset")
    archive.unlink()
    return data.classify_data(root) if env.spec.task == "classify" else data.yolo_data(root)


def upload_artifacts(client: CallbackClient, run_dir: Path) -> list[str]:
    uploaded = []
    for relative in ARTIFACTS:
        path = run_dir / relative
        if path.is_file():
            client.upload_artifact(path, path.name)
            uploaded.append(path.name)
    return uploaded


def run(env: TrainerEnv[UltralyticsSpec], client: CallbackClient, heartbeat: Heartbeat, work: Path) -> Result:
    dataset = _dataset(env, work)
    if heartbeat.stop_requested.is_set():
        return stopped(heartbeat, None)
    offline.prepare(work / "ultralytics-config")
    offline.configure()
    # Imported only now: a job that cannot run fails fast, without paying for torch and Ultralytics.
    from trainers.ultralytics import export, training

    progress = Progress(client)
    resume = resume_point(env, progress, work / "resume" / "last.pt", read_resume_point)
    weights = None if resume is not None else fetch_weights(env, progress, work / "weights" / "weights.pt")
    try:
        outcome = training.train(
            env.spec,
            dataset,
            work / "runs",
            heartbeat.stop_requested,
            progress,
            resume=resume,
            weights=weights,
            # A copy to hand over: Ultralytics writes the next epoch's last.pt over its own (a preemption
            # leaves it the latest completed epoch's: a skipped one is copied then).
            on_checkpoint=lambda last, epoch: progress.checkpoint(
                epoch, lambda: shutil.copyfile(last, work / "checkpoint.pt")
            ),
            preempt=heartbeat.preempt_requested,
        )
    except Exception:
        progress.flush()  # every epoch reported before the failure
        raise
    metrics: dict[str, Any] = {**outcome.metrics, "epochs": outcome.epochs_done}
    if outcome.stopped and heartbeat.preempted:
        # Nothing but the checkpoint: the run folder's last.pt would replace the job's resumable one.
        return stopped(heartbeat, progress, metrics)
    progress.flush()  # every epoch reported before anything else goes out
    uploaded = upload_artifacts(client, outcome.save_dir)
    log.info("uploaded %s", ", ".join(uploaded) or "nothing")
    if outcome.stopped:
        return stopped(heartbeat, progress, metrics)
    exporter = export.exporter(outcome.save_dir / "weights" / "best.pt")
    # Only a cancel skips exports: a SIGTERM after the last epoch leaves the end to the grace.
    if failed := export_all(env.spec.export, exporter, client, progress, heartbeat.cancel_requested):
        metrics["export_failed"] = failed
    return Result("succeeded", metrics=metrics)


def main() -> int:
    return run_trainer("ultralytics", UltralyticsSpec, run)
