"""The platform's trainings without the platform, for bench/training_overhead.py: plain Ultralytics with the
arguments the Ultralytics trainer passes, and the timm trainer's own training loop with no callbacks, on a
dataset already on disk. No heartbeat, no dataset download, no checkpoint or artifact upload, no reports.

Run: `python -m bench.direct_training SPEC_JSON DATA` (DATA: a data.yaml, or an imagefolder root). Its last
line on stdout is JSON: `{"epochs": [t1, t2, ...]}`, when each epoch ended as `time.perf_counter()` (the
system-wide monotonic clock on Linux, so the parent compares them with its own).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from contracts.jobs import JobSpec, TimmSpec
from contracts.ultralytics import UltralyticsSpec


def yolo(spec: UltralyticsSpec, data: Path, work: Path, epoch_ends: list[float]) -> None:
    from trainers.ultralytics import offline

    offline.prepare(work / "ultralytics-config")  # the offline setup any run on this machine needs
    offline.configure()
    from ultralytics import YOLO

    from trainers.ultralytics.training import train_arguments

    model = YOLO(spec.model, task=spec.task)

    def on_fit_epoch_end(trainer: Any) -> None:
        # It fires once more after the last epoch (the final validation): that one is no epoch.
        if len(epoch_ends) < trainer.epochs:
            epoch_ends.append(time.perf_counter())

    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
    model.train(**train_arguments(spec, data, work / "runs"))


def timm(spec: TimmSpec, data: Path, work: Path, epoch_ends: list[float]) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from trainers.timm import training

    training.configure_threads()
    outcome = training.train(spec, data, threading.Event(), lambda *_: epoch_ends.append(time.perf_counter()))
    torch.save(outcome.state_dict, work / "model.pt")  # keeping the model is part of any training


def main() -> None:
    spec = TypeAdapter(JobSpec).validate_json(sys.argv[1])
    data = Path(sys.argv[2])
    epoch_ends: list[float] = []
    with tempfile.TemporaryDirectory(prefix="vtp-direct-") as work:
        if isinstance(spec, UltralyticsSpec):
            yolo(spec, data, Path(work), epoch_ends)
        elif isinstance(spec, TimmSpec):
            timm(spec, data, Path(work), epoch_ends)
        else:
            raise SystemExit(f"no direct training for {spec.framework}")
    print(json.dumps({"epochs": epoch_ends}))


if __name__ == "__main__":
    main()
