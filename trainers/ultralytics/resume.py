"""Resuming a YOLO run from the job's last checkpoint: Ultralytics' own `last.pt` (model, EMA, optimizer,
epoch, its train arguments), given to `train(resume=<local path>)`, so nothing is fetched from anywhere.

A resumed attempt trains in a run folder of its own, and Ultralytics carries only the training state over.
`seed_run_folder` puts the rest there first: `results.csv` of the epochs so far (the checkpoint keeps them),
and the checkpoint itself as `best.pt`, with its fitness as the best so far (`ResumePoint.fitness`): the run
then ends with a best.pt to validate even when no later epoch beats the dead attempt's best, whose weights
died with it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainers.resume import NotResumable


@dataclass(frozen=True)
class ResumePoint:
    checkpoint: Path
    epoch: int  # epochs done: training goes on with epoch + 1
    epochs: int
    fitness: float | None  # the checkpoint's own, which its best.pt stands for from now on
    results: dict[str, list[Any]]  # results.csv so far, by column


def read_resume_point(checkpoint: Path) -> ResumePoint:
    """Raises `NotResumable` for anything but a mid-run checkpoint. It is this job's (its storage key says
    so), so its arguments are not compared with the spec: a resumed run records its checkpoint's path as
    `model`, for one."""
    from ultralytics.utils.patches import torch_load

    try:
        ckpt = torch_load(checkpoint, map_location="cpu")
    except Exception as exc:
        raise NotResumable(f"is unreadable ({type(exc).__name__}: {exc})") from None
    args = ckpt.get("train_args") if isinstance(ckpt, dict) else None
    if not isinstance(args, dict) or ckpt.get("optimizer") is None or ckpt.get("epoch", -1) < 0:
        # The final last.pt is one: Ultralytics strips the optimizer from it after the last epoch.
        raise NotResumable("holds no training state")
    epoch, epochs = ckpt["epoch"] + 1, int(args["epochs"])
    if epoch >= epochs:
        raise NotResumable(f"is of a run that finished all {epochs} epochs")
    return ResumePoint(
        checkpoint=checkpoint,
        epoch=epoch,
        epochs=epochs,
        fitness=(ckpt.get("train_metrics") or {}).get("fitness"),
        results=ckpt.get("train_results") or {},
    )


def seed_run_folder(point: ResumePoint, save_dir: Path) -> None:
    import polars as pl

    weights = save_dir / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(point.checkpoint, weights / "best.pt")
    if point.results:
        pl.DataFrame(point.results).write_csv(save_dir / "results.csv")
