"""Exports after training: the shared policy (each format uploaded as an artifact; a failed export a warning
and an `export_failed` entry, never the job's failure; a cancellation skips the rest), and the timm exporter
for real: its ONNX runs in onnxruntime and its TorchScript in `torch.jit.load`, both giving the model's own
logits for a batch of any size."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import timm
import torch

from contracts.jobs import Hyperparameters, TimmSpec
from tests.trainers.exported import load_torchscript
from trainers.exports import REASON_CHARS, export_all
from trainers.resume import Progress
from trainers.timm import export


class RecordingClient:
    """The two callbacks an export makes, recorded instead of sent."""

    def __init__(self) -> None:
        self.uploaded: list[tuple[str, bytes]] = []
        self.logs: list[tuple[str, str]] = []

    def upload_artifact(self, path: Path, name: str) -> None:
        self.uploaded.append((name, path.read_bytes()))

    def log(self, message: str, level: str = "info") -> None:
        self.logs.append((level, message))


def run_exports(formats, exporter, stop: threading.Event | None = None):
    client = RecordingClient()
    failed = export_all(formats, exporter, client, Progress(client), stop or threading.Event())
    return client, failed


def test_a_failed_export_is_a_warning_and_the_others_still_upload(tmp_path: Path) -> None:
    def exporter(export_format: str) -> Path:
        if export_format == "onnx":
            raise RuntimeError("unsupported operator aten::magic\n" + "graph " * 1000)
        path = tmp_path / f"model.{export_format}"
        path.write_bytes(b"scripted")
        return path

    client, failed = run_exports(["onnx", "torchscript"], exporter)
    assert client.uploaded == [("model.torchscript", b"scripted")]
    assert failed["onnx"].startswith("RuntimeError: unsupported operator aten::magic")
    assert len(failed["onnx"]) == REASON_CHARS
    [(level, warning), (info_level, info)] = client.logs
    assert (level, warning) == ("warning", f"export to onnx failed: {failed['onnx']}")
    assert info_level == "info"
    assert info.startswith("exported torchscript: model.torchscript (")


def test_nothing_asked_nothing_exported_and_a_cancellation_skips_the_rest(tmp_path: Path) -> None:
    def exporter(export_format: str) -> Path:
        raise AssertionError(f"{export_format} exported")

    assert run_exports(None, exporter)[0].logs == []
    stopped = threading.Event()
    stopped.set()
    client, failed = run_exports(["onnx"], exporter, stopped)
    assert (client.uploaded, client.logs, failed) == ([], [], {})


CLASSES = ["circle", "square", "triangle"]
SIZE = 32


@pytest.fixture(scope="module")
def trained() -> tuple[TimmSpec, dict[str, torch.Tensor]]:
    """A resnet18 for 3 classes as a job would have it after training (its weights: any will do)."""
    spec = TimmSpec(
        framework="timm",
        task="classify",
        model="resnet18",
        hyperparameters=Hyperparameters(image_size=SIZE),
        export=["onnx", "torchscript"],
    )
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=len(CLASSES))
    return spec, model.state_dict()


def reference_logits(trained, images: torch.Tensor) -> np.ndarray:
    spec, state_dict = trained
    model = timm.create_model(spec.model, pretrained=False, num_classes=len(CLASSES))
    model.load_state_dict(state_dict)
    with torch.no_grad():
        return model.eval()(images).numpy()


def test_timm_onnx_runs_in_onnxruntime_with_the_models_logits(trained, tmp_path: Path) -> None:
    path = export.exporter(trained[0], CLASSES, trained[1], tmp_path)("onnx")
    assert path == tmp_path / "model.onnx"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [given] = session.get_inputs()
    assert (given.name, given.shape[1:]) == ("images", [3, SIZE, SIZE])
    assert session.get_outputs()[0].name == "logits"
    images = torch.randn(2, 3, SIZE, SIZE)  # traced with one image: the batch axis is dynamic
    [logits] = session.run(None, {"images": images.numpy()})
    assert logits.shape == (2, len(CLASSES))
    np.testing.assert_allclose(logits, reference_logits(trained, images), rtol=1e-4, atol=1e-4)


def test_timm_torchscript_loads_with_torch_jit_load_and_gives_the_models_logits(
    trained, tmp_path: Path
) -> None:
    path = export.exporter(trained[0], CLASSES, trained[1], tmp_path)("torchscript")
    assert path == tmp_path / "model.torchscript"
    loaded = load_torchscript(path)
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        logits = loaded(images).numpy()
    assert logits.shape == (2, len(CLASSES))
    np.testing.assert_allclose(logits, reference_logits(trained, images), rtol=1e-4, atol=1e-4)
