"""Training-overhead benchmark (not a test): the same tiny trainings run directly and through the platform.

For each framework (yolo11n on a detection set, resnet18 on an imagefolder set; 32 train + 8 val images of
64 px each), one after the other, never at once:
- DIRECT: `python -m bench.direct_training`, a process of its own: plain Ultralytics with the arguments the
  Ultralytics trainer passes, or the timm trainer's own loop, on the dataset already on disk;
- PLATFORM: the same job submitted through REST to the local pool of a platform this benchmark starts
  (bench/harness.py), watched on NATS until SUCCEEDED. Everything a job costs counts: the scheduler, the
  pool starting a runner, the runner starting the trainer, the dataset download, the heartbeat, a checkpoint
  upload after every epoch, the progress callbacks, the final artifacts. (Not the trainer process's exit
  after its `done`: the job is SUCCEEDED for its user by then. The direct run's wall time includes its exit.)

Runs alternate which goes first (direct, platform; then platform, direct; ...), so a machine that slows
down or speeds up during the benchmark favours neither. It prints the median wall time of each, the median
of the runs' ratios (each platform run against the direct run next to it), the per-epoch times, and the fixed
per-job overhead:
dispatch (QUEUED) -> first epoch reported, less one epoch, next to the direct run's start -> first epoch,
less one epoch (the imports and set-up any training pays).

Run: `python bench/training_overhead.py [--epochs 20] [--frameworks yolo,timm] [--repeat 1] [--telemetry]`
(`--telemetry`: the platform, runner and trainers included, exports every span to a local OTLP receiver).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import EventWatch, bench_setup, upload_dataset
from bench.otlp_receiver import ReceiverProcess, traces_to
from trainers.datasets import safe_extract
from trainers.ultralytics.data import yolo_data
from vtp.synthetic import make_imagefolder_archive, make_yolo_detect_archive

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = ("succeeded", "failed", "cancelled")
# A job is SUCCEEDED at its trainer's `done`; the trainer process exits after that. The next run should not
# share the cores with it.
SETTLE_SECONDS = 3


@dataclass(frozen=True)
class Training:
    dataset_format: str
    make_archive: Callable[[Path], Path]
    job: dict[str, Any]  # the spec, but for the hyperparameters
    hyperparameters: Callable[[int], dict[str, Any]]  # epochs -> hyperparameters

    def spec(self, epochs: int) -> dict[str, Any]:
        return {**self.job, "hyperparameters": self.hyperparameters(epochs)}

    def data(self, root: Path) -> Path:
        """What the direct run trains on: as the platform's trainer prepares it from the extracted archive."""
        return yolo_data(root) if self.dataset_format == "yolo-detect" else root


TRAININGS = {
    "yolo": Training(
        "yolo-detect",
        lambda folder: make_yolo_detect_archive(folder / "detect.zip", train=32, val=8, size=64),
        {"framework": "ultralytics", "task": "detect", "model": "yolo11n.yaml"},
        lambda epochs: {"epochs": epochs, "imgsz": 64, "batch": 8, "mosaic": 0.0},
    ),
    "timm": Training(
        "imagefolder",
        lambda folder: make_imagefolder_archive(
            folder / "shapes.zip", classes=4, train_per_class=8, val_per_class=2, size=64
        ),
        {"framework": "timm", "task": "classify", "model": "resnet18"},
        lambda epochs: {"epochs": epochs, "batch_size": 8, "image_size": 64},
    ),
}


@dataclass(frozen=True)
class Timing:
    """One run, in seconds from its start (direct: the process spawned; platform: the submit sent)."""

    wall: float
    first_epoch: float  # the first epoch reported
    per_epoch: float  # mean over epochs 2..N
    phases: dict[str, float]  # the platform's way to its first epoch, and both runs' tail

    def fixed(self, dispatched: float = 0.0) -> float:
        """From dispatch (or the start) to the first epoch, less one epoch: what a job pays once."""
        return self.first_epoch - dispatched - self.per_epoch


def per_epoch(ends: list[float]) -> float:
    return (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else float("nan")


def run_direct(spec: dict[str, Any], data: Path) -> Timing:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.direct_training", json.dumps(spec), str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the direct run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    ends = [end - started for end in json.loads(done.stdout.strip().splitlines()[-1])["epochs"]]
    return Timing(wall, ends[0], per_epoch(ends), {"last epoch -> exit": wall - ends[-1]})


async def run_on_platform(
    api: httpx.AsyncClient, watch: EventWatch, body: dict[str, Any], limit_s: float
) -> Timing:
    started = time.perf_counter()
    response = await api.post("/v1/jobs", json=body)
    response.raise_for_status()
    job_id = str(response.json()["id"])
    deadline = started + limit_s
    while not any(kind in TERMINAL for kind, _ in watch.history.get(job_id, [])):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"job {job_id} did not end within {limit_s:.0f} s")
        await asyncio.sleep(0.05)
    history = watch.history[job_id]
    end_kind, end = history[-1]
    if end_kind != "succeeded":
        raise RuntimeError(f"job {job_id} ended {end_kind}; see the platform's logs")
    first = {kind: at - started for kind, at in reversed(history)}  # the first of each kind wins
    ends = [at - started for kind, at in history if kind == "progress"]
    phases = {
        "submit -> QUEUED": first["queued"],
        "QUEUED -> RUNNING": first["running"] - first["queued"],
        "RUNNING -> epoch 1": ends[0] - first["running"],
        "last epoch -> SUCCEEDED": end - started - ends[-1],
    }
    return Timing(end - started, ends[0], per_epoch(ends), phases)


def median_timing(runs: list[Timing]) -> Timing:
    return Timing(
        statistics.median(r.wall for r in runs),
        statistics.median(r.first_epoch for r in runs),
        statistics.median(r.per_epoch for r in runs),
        {name: statistics.median(r.phases[name] for r in runs) for name in runs[0].phases},
    )


def report(
    results: dict[str, tuple[Timing, Timing]], ratios: dict[str, float], epochs: int, repeat: int
) -> None:
    print()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{epochs} epochs, 32 train + 8 val images of 64 px, median of {repeat}; seconds")
    print(f"{os.cpu_count()} cores, load average {load} (1, 5, 15 min) at the end")
    print(
        f"{'framework':10} {'direct':>8} {'platform':>9} {'ratio':>6}   {'per epoch: direct':>17} "
        f"{'platform':>9}   {'fixed overhead: direct':>22} {'platform':>9}"
    )
    for name, (direct, platform) in results.items():
        dispatched = platform.phases["submit -> QUEUED"]
        print(
            f"{name:10} {direct.wall:8.2f} {platform.wall:9.2f} {ratios[name]:6.3f}   "
            f"{direct.per_epoch:17.3f} {platform.per_epoch:9.3f}   "
            f"{direct.fixed():22.2f} {platform.fixed(dispatched):9.2f}"
        )
    print("(ratio: median of each run's platform / direct wall time)")
    print("(fixed overhead: start -> first epoch less one epoch; on the platform from dispatch, QUEUED)")
    for name, (direct, platform) in results.items():
        phases = {**platform.phases, "direct: last epoch -> exit": direct.phases["last epoch -> exit"]}
        print(f"{name:10} " + "   ".join(f"{label} {value:.2f}" for label, value in phases.items()))


async def run(args: argparse.Namespace) -> None:
    names = args.frameworks.split(",")
    unknown = set(names) - TRAININGS.keys()
    if unknown:
        raise SystemExit(f"unknown frameworks {sorted(unknown)}; choose from {sorted(TRAININGS)}")
    receiver = ReceiverProcess() if args.telemetry else None
    with bench_setup() as setup:
        if receiver is not None:
            receiver.start()
            print(f"telemetry on: every span exported to {receiver.endpoint}", flush=True)
        platform = setup.launch(traces_to(receiver.endpoint) if receiver is not None else None)
        datasets: dict[str, tuple[str, Path]] = {}
        for name in names:
            training = TRAININGS[name]
            archive = training.make_archive(setup.folder / name)
            dataset_id = upload_dataset(platform.url, platform.key, archive, training.dataset_format)
            datasets[name] = dataset_id, training.data(safe_extract(archive, setup.folder / name / "data"))
        watch = EventWatch()
        await watch.start(setup.nats.url)
        # The first process to import torch reads it from disk; no run should pay for that alone. (Ultralytics
        # writes its settings where YOLO_CONFIG_DIR says, at import.)
        warm_up = [sys.executable, "-c", "import torch, timm, ultralytics"]
        env = {**os.environ, "YOLO_CONFIG_DIR": str(setup.folder / "ultralytics"), "YOLO_OFFLINE": "1"}
        await asyncio.to_thread(subprocess.run, warm_up, env=env, check=True)
        runs: dict[str, tuple[list[Timing], list[Timing]]] = {name: ([], []) for name in names}
        headers = {"Authorization": f"Bearer {platform.key}"}
        async with httpx.AsyncClient(base_url=platform.url, headers=headers, timeout=30) as api:
            for i in range(args.repeat):
                for name in names:
                    spec = TRAININGS[name].spec(args.epochs)
                    dataset_id, data = datasets[name]
                    body = {**spec, "dataset": dataset_id, "pool": "local"}
                    for way in ("direct", "platform") if i % 2 == 0 else ("platform", "direct"):
                        print(f"[{i + 1}/{args.repeat}] {name}: {way} …", flush=True)
                        if way == "direct":
                            runs[name][0].append(await asyncio.to_thread(run_direct, spec, data))
                        else:
                            timing = await run_on_platform(api, watch, body, 120 + 30 * args.epochs)
                            runs[name][1].append(timing)
                            await asyncio.sleep(SETTLE_SECONDS)
        await watch.stop()
    if receiver is not None:
        print(f"spans received: {receiver.spans}")
        receiver.stop()
    medians = {
        name: (median_timing(direct), median_timing(queued)) for name, (direct, queued) in runs.items()
    }
    ratios = {
        name: statistics.median(p.wall / d.wall for d, p in zip(direct, queued, strict=True))
        for name, (direct, queued) in runs.items()
    }
    report(medians, ratios, args.epochs, args.repeat)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--frameworks", default="yolo,timm", help="comma-separated: yolo, timm")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the figures are medians")
    parser.add_argument(
        "--telemetry", action="store_true", help="the platform exports every span to a local OTLP receiver"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
