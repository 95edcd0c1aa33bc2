"""Which trainer failures another attempt cannot help: each rule of `trainers.failures` against the real error
(timm, torch, torchvision, PIL, Ultralytics raising it), and the failures that must stay retryable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from contracts.jobs import TimmSpec
from trainers.datasets import safe_extract
from trainers.failures import DatasetUnfit, Failure, SpecRefused, WeightsUnfit, classify


def raised(call, *args, **kwargs) -> BaseException:
    try:
        call(*args, **kwargs)
    except Exception as exc:
        return exc
    raise AssertionError(f"{call} raised nothing")


def test_an_unknown_timm_model_will_recur_and_says_which() -> None:
    import timm

    failure = classify(raised(timm.create_model, "no_such_model", pretrained=False), "timm")
    assert failure == Failure(
        "RuntimeError: Unknown model (no_such_model); use a model name timm knows (timm.list_models())",
        retryable=False,
    )


def test_weights_that_do_not_fit_the_model_will_recur() -> None:
    import timm

    model = timm.create_model("resnet18", pretrained=False, num_classes=3)
    other = timm.create_model("resnet18", pretrained=False, num_classes=5).state_dict()
    failure = classify(raised(model.load_state_dict, other), "timm")
    assert not failure.retryable
    assert failure.reason.startswith("RuntimeError: Error(s) in loading state_dict for ResNet")
    assert "size mismatch for fc.weight" in failure.reason


def test_starting_weights_refused_by_the_timm_trainer_will_recur(tmp_path: Path) -> None:
    from trainers.timm.weights import read_weights

    path = tmp_path / "weights.pt"
    path.write_bytes(b"not a torch file")
    exc = raised(read_weights, path)
    assert isinstance(exc, WeightsUnfit)
    assert isinstance(exc, ValueError)  # as before, for callers that catch ValueError
    assert not classify(exc).retryable


def test_cuda_out_of_memory_will_recur_with_a_hint_naming_the_batch_field() -> None:
    import torch

    # No GPU here: the very class torch's CUDA allocator raises, with its message.
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.7 GiB total)")
    assert classify(oom, "timm") == Failure(
        "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.7 GiB total); "
        "lower batch (hyperparameters.batch_size)",
        retryable=False,
    )
    assert classify(oom, "ultralytics").reason.endswith("; lower batch (hyperparameters.batch)")
    assert classify(torch.cuda.OutOfMemoryError("CUDA out of memory."), "timm").retryable is False
    # Older paths: a plain RuntimeError with the allocator's words.
    assert not classify(RuntimeError("CUDA error: out of memory"), "timm").retryable


def test_a_dataset_that_does_not_fit_will_recur(tmp_path: Path) -> None:
    from trainers.timm import training

    (tmp_path / "train" / "only").mkdir(parents=True)
    spec = TimmSpec(framework="timm", task="classify", model="resnet18")
    exc = raised(training.train, spec, tmp_path, threading.Event(), lambda *_: None)
    assert isinstance(exc, DatasetUnfit)
    failure = classify(exc, "timm")
    assert not failure.retryable
    assert failure.reason.startswith("DatasetUnfit: Found no valid file for the classes only")


def test_an_archive_that_cannot_be_read_will_recur(tmp_path: Path) -> None:
    archive = tmp_path / "data.zip"
    archive.write_bytes(b"no zip at all")
    failure = classify(raised(safe_extract, archive, tmp_path / "out"))
    assert not failure.retryable
    assert failure.reason.startswith("UnsupportedArchive: ")


def test_an_image_that_cannot_be_read_will_recur(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "broken.png").write_bytes(b"not a png")
    failure = classify(raised(Image.open, tmp_path / "broken.png"))
    assert not failure.retryable
    assert failure.reason.startswith("UnidentifiedImageError: ")


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("dataset download failed: status 503"),
        RuntimeError("trainer exited with signal SIGKILL"),
        RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1 GiB"),
        RuntimeError("Dataset 'x.yaml' error ❌ raised outside Ultralytics"),
        httpx.ConnectError("connection refused"),
        ValueError("a bug of ours"),
        KeyError("val_loss"),
        OSError(28, "No space left on device"),
        SyntaxError("not Ultralytics' cfg"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_anything_else_stays_retryable(exc: BaseException) -> None:
    failure = classify(exc, "timm")
    assert failure.retryable
    assert failure.reason == f"{type(exc).__name__}: {exc}"


def test_a_trainers_own_verdict_carries_its_hint() -> None:
    failure = classify(SpecRefused("no such model", hint="pick another"))
    assert failure == Failure("SpecRefused: no such model; pick another", retryable=False)


ULTRALYTICS = """
import json, sys, threading
from pathlib import Path
from types import SimpleNamespace

from trainers.ultralytics import offline

work = Path(sys.argv[1])
offline.prepare(work / "config")
offline.configure()
from ultralytics.cfg import DEFAULT_CFG_DICT, get_cfg
from ultralytics.engine.trainer import BaseTrainer

from contracts.ultralytics import UltralyticsSpec
from trainers.failures import classify
from trainers.ultralytics import training

def raised(call, *args):
    try:
        call(*args)
    except Exception as exc:
        return classify(exc, "ultralytics")
    raise AssertionError("nothing raised")

found = {}
found["argument"] = raised(get_cfg, DEFAULT_CFG_DICT, {"no_such_argument": 1})
found["value"] = raised(get_cfg, DEFAULT_CFG_DICT, {"lr0": "fast"})
found["bug"] = raised(get_cfg, None, {})  # no refusal: an error in how it was called
data = str(work / "missing.yaml")
args = SimpleNamespace(data=data, fraction=1.0, split=None, task="detect", single_cls=False)
found["dataset"] = raised(BaseTrainer.get_dataset, SimpleNamespace(args=args))
spec = UltralyticsSpec(framework="ultralytics", task="detect", model="yolo99n.yaml")
found["model"] = raised(training.train, spec, work, work / "runs", threading.Event(), lambda *_: None)
print(json.dumps({name: [f.reason, f.retryable] for name, f in found.items()}))
"""


def test_what_ultralytics_refuses_will_recur(tmp_path: Path) -> None:
    # In a process of its own: Ultralytics reads its environment and writes its settings at import.
    done = subprocess.run(
        [sys.executable, "-c", ULTRALYTICS, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "YOLO_VERBOSE": "False"},
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    retryable = {name: retryable for name, (_, retryable) in found.items()}
    assert retryable == {"argument": False, "value": False, "dataset": False, "model": False, "bug": True}
    assert found["argument"][0].startswith("SyntaxError: ")
    assert found["argument"][0] == "SyntaxError: 'no_such_argument' is not a valid YOLO argument."
    assert found["value"][0].startswith("TypeError: 'lr0=fast'")
    assert found["dataset"][0].startswith("RuntimeError: Dataset '")
    assert found["model"][0].startswith("SpecRefused: Ultralytics has no model yolo99n.yaml (")
