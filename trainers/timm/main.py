"""`python -m trainers.timm`: read the trainer environment, fetch the dataset (and on a retry the job's last
checkpoint, to resume from), train, upload `last.pt` after every epoch, then `model.pt` (a plain
state_dict), `classes.json` and the exports the spec asks for, report done. Exit 0 when succeeded,
cancelled or preempted, 1 on failure.

Preempted (SIGTERM, trainers/preemption.py), training stops at the next batch and the job's `last.pt` is
brought up to the latest epoch completed within the grace; then `done(preempted)`. After the last epoch a
SIGTERM stops nothing: the uploads and exports go on, and the job succeeds if they end within the grace
(else the watchdog reports the preemption, and the next run resumes from the final epoch's checkpoint)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from contracts.jobs import TimmSpec, dataset_mismatch
from trainers.callbacks import CallbackClient
from trainers.datasets import download, safe_extract
from trainers.env import TrainerEnv
from trainers.exports import export_all
from trainers.failures import DatasetUnfit
from trainers.heartbeat import Heartbeat
from trainers.outcome import Result, run_trainer, stopped
from trainers.resume import Progress, resume_point
from trainers.weights import fetch_weights

if TYPE_CHECKING:  # imported at run time only once the job is known to be runnable
    import torch

log = logging.getLogger("trainers.timm")


def run(env: TrainerEnv[TimmSpec], client: CallbackClient, heartbeat: Heartbeat, work: Path) -> Result:
    if problem := dataset_mismatch(env.spec, env.dataset_format):
        raise DatasetUnfit(problem)
    # Imported only now: a job that cannot run fails fast, without paying for torch.
    import torch

    from trainers.timm import checkpoint, export, training

    training.configure_threads()
    archive = download(env.dataset_url, work / "dataset.archive")
    root = safe_extract(archive, work / "dataset")
    archive.unlink()
    if heartbeat.stop_requested.is_set():
        return stopped(heartbeat, None)
    progress = Progress(client)
    resume = resume_point(env, progress, work / "resume.pt", lambda path: checkpoint.read(path, env.spec))
    weights = None if resume is not None else _starting_weights(env, progress, work)
    last = work / "last.pt"
    try:
        outcome = training.train(
            env.spec,
            root,
            heartbeat.stop_requested,
            progress,
            resume=resume,
            weights=weights,
            on_checkpoint=lambda reached: progress.checkpoint(reached.epoch, lambda: reached.save(last)),
        )
    except Exception:
        progress.flush()  # every epoch reported before the failure
        raise
    if outcome.stopped:
        return stopped(heartbeat, progress, {"epochs": outcome.epochs_done})
    progress.flush()  # every epoch reported before anything else goes out
    model_path, classes_path = work / "model.pt", work / "classes.json"
    torch.save(outcome.state_dict, model_path)
    classes_path.write_text(json.dumps(outcome.classes))
    client.upload_artifact(model_path, "model.pt")
    client.upload_artifact(classes_path, "classes.json")
    metrics: dict[str, Any] = {**outcome.metrics, "epochs": outcome.epochs_done}
    exporter = export.exporter(env.spec, outcome.classes, outcome.state_dict, work)
    # Only a cancel skips exports: a SIGTERM after the last epoch leaves the end to the grace.
    if failed := export_all(env.spec.export, exporter, client, progress, heartbeat.cancel_requested):
        metrics["export_failed"] = failed
    return Result("succeeded", metrics=metrics)


def _starting_weights(
    env: TrainerEnv[TimmSpec], progress: Progress, work: Path
) -> dict[str, torch.Tensor] | None:
    from trainers.timm.weights import read_weights

    path = fetch_weights(env, progress, work / "weights.pt")
    return None if path is None else read_weights(path)


def main() -> int:
    return run_trainer("timm", TimmSpec, run)
