"""`vtp demo [--yolo]`: the platform end to end in one command.

Uses the API configured for this data dir if one answers; otherwise starts `vtp up` in the background for the
duration of the demo. Then: a small synthetic dataset (uploaded, then validated by its validation job), a tiny
job followed live (a resnet18 classifier, or with `--yolo` a YOLO detector), the checkpoint downloaded, and
how to load it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtp.client import CLIENT_ENV, ApiClient, ClientConfig, CliError, ConfigError, load_config
from vtp.commands.datasets import upload, verdict, wait_for_validation
from vtp.embedded.ports import free_port
from vtp.up import port_is_free
from vtp.watch import watch_job

CLASSES = 3
START_TIMEOUT = 180.0


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    demo = subparsers.add_parser(
        "demo", parents=[common], help="train a tiny model end to end on synthetic data"
    )
    demo.add_argument("--epochs", type=int, default=3)
    demo.add_argument(
        "--yolo", action="store_true", help="train a YOLO detector instead of a timm classifier"
    )
    demo.add_argument(
        "--model", help="timm model name (default resnet18), or with --yolo a model YAML (yolo11n.yaml)"
    )
    demo.add_argument(
        "--port", type=int, help="API port if the demo starts the platform (default: 8000 or free)"
    )
    demo.set_defaults(handler=run_demo)


def running_api(data_dir: Path) -> ClientConfig | None:
    try:
        config = load_config(data_dir)
    except ConfigError:
        return None
    with ApiClient(config) as client:
        return config if client.healthy() else None


@contextmanager
def platform(data_dir: Path, port: int | None) -> Iterator[ClientConfig]:
    """The running platform of this data dir, or one started (and stopped again) for the demo."""
    if config := running_api(data_dir):
        print(f"using the platform at {config.url}")
        yield config
        return
    port = port or (8000 if port_is_free(8000) else free_port())
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "logs" / "vtp-up.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"starting the platform in {data_dir} (log: {log_path}) ...", flush=True)
    client_env = data_dir / CLIENT_ENV
    started = time.time()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "vtp.cli", "up", "--data-dir", str(data_dir), "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k not in ("VTP_API_URL", "VTP_API_KEY")},
        )
    try:
        config = wait_for_platform(process, data_dir, client_env, started, log_path)
        print(f"platform is up at {config.url}", flush=True)
        yield config
    finally:
        print("stopping the platform ...", flush=True)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_platform(
    process: subprocess.Popen[bytes], data_dir: Path, client_env: Path, started: float, log_path: Path
) -> ClientConfig:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CliError(f"the platform exited with code {process.returncode}; see {log_path}")
        # client.env is rewritten on every start: only a fresh one names this start's port.
        if client_env.exists() and client_env.stat().st_mtime >= started - 1:
            config = running_api(data_dir)
            if config is not None:
                return config
        time.sleep(0.5)
    raise CliError(f"the platform did not come up within {START_TIMEOUT:.0f}s; see {log_path}")


@dataclass(frozen=True)
class Demo:
    """One demo: its dataset, its job, and how to use the checkpoint it downloads."""

    archive: Path
    dataset_format: str
    job: dict[str, Any]
    checkpoint: str
    usage: str  # how to load the checkpoint; `{checkpoint}` stands for its path

    @classmethod
    def timm(cls, demo_dir: Path, model: str, epochs: int) -> Demo:
        from vtp.synthetic import make_imagefolder_archive

        hyperparameters = {"epochs": epochs, "batch_size": 8, "image_size": 64, "learning_rate": 1e-3}
        return cls(
            archive=make_imagefolder_archive(demo_dir / "shapes.zip", classes=CLASSES),
            dataset_format="imagefolder",
            job={"framework": "timm", "task": "classify", "model": model, "hyperparameters": hyperparameters},
            checkpoint="model.pt",
            usage=f"load it with timm:\n\nimport timm, torch\n"
            f'model = timm.create_model("{model}", pretrained=False, num_classes={CLASSES})\n'
            'model.load_state_dict(torch.load("{checkpoint}", map_location="cpu"))',
        )

    @classmethod
    def yolo(cls, demo_dir: Path, model: str, epochs: int) -> Demo:
        from vtp.synthetic import make_yolo_detect_archive

        hyperparameters = {"epochs": epochs, "imgsz": 64, "batch": 8}
        return cls(
            archive=make_yolo_detect_archive(demo_dir / "shapes-detect.zip"),
            dataset_format="yolo-detect",
            job={
                "framework": "ultralytics",
                "task": "detect",
                "model": model,
                "hyperparameters": hyperparameters,
            },
            checkpoint="best.pt",
            usage='load it with Ultralytics:\n\nfrom ultralytics import YOLO\nmodel = YOLO("{checkpoint}")\n'
            'results = model.predict("path/to/image.png")',
        )


def run_demo(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    demo_dir = data_dir / "demo"
    if args.yolo:
        demo = Demo.yolo(demo_dir, args.model or "yolo11n.yaml", args.epochs)
    else:
        demo = Demo.timm(demo_dir, args.model or "resnet18", args.epochs)
    print(f"made a synthetic {demo.dataset_format} dataset: {demo.archive}")
    with platform(data_dir, args.port) as config, ApiClient(config) as client:
        dataset = upload(client, demo.archive, f"demo-{demo.archive.stem}", demo.dataset_format)
        print(f"uploaded dataset {dataset['id']}; validating it")
        dataset = wait_for_validation(client, dataset)
        print("\n".join(verdict(dataset)))
        if dataset["status"] != "READY":
            raise CliError(f"the demo dataset is {dataset['status']}")
        job = client.submit_job(
            {"name": f"demo-{demo.job['model']}", **demo.job, "dataset": dataset["id"], "pool": "local"}
        )
        print(f"submitted job {job['id']}; following it live")
        view = watch_job(client, job["id"])
        if view.state != "SUCCEEDED":
            raise CliError(f"the job ended {view.state}" + (f": {view.reason}" if view.reason else ""))
        names = [artifact["name"] for artifact in client.list_artifacts(job["id"])]
        print(f"artifacts: {', '.join(names)}")
        checkpoint = client.download_artifact(
            job["id"], demo.checkpoint, demo_dir / job["id"] / demo.checkpoint
        )
    print(f"\ncheckpoint: {checkpoint}\n{demo.usage.format(checkpoint=checkpoint)}")
    return 0
