"""The trained timm classifier in other formats, both taking what training fed the model: a float32 batch
`images` (N, 3, S, S), S the job's `image_size`, scaled to [0, 1] and normalised with ImageNet's mean and std
(`training.MEAN`, `training.STD`), and giving `logits` (N, classes) in the order of `classes.json`.

- `model.onnx`: timm's own ONNX exporter (the TorchScript-based one: no onnxscript needed, and the one timm
  tests), with a dynamic batch axis, checked by onnx's checker.
- `model.torchscript`: the model traced (every timm model traces; not all of them script); load it with
  `torch.jit.load`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path

import timm
import torch
from torch import nn

from contracts.exports import ExportFormat
from contracts.jobs import TimmSpec
from trainers.exports import Exporter

ARTIFACTS: dict[ExportFormat, str] = {"onnx": "model.onnx", "torchscript": "model.torchscript"}
INPUT, OUTPUT = "images", "logits"


def _onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    from timm.utils.onnx import onnx_export

    onnx_export(model, str(path), example_input=example, input_names=[INPUT], output_names=[OUTPUT])


def _torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with torch.no_grad():
        torch.jit.trace(model, example).save(str(path))


WRITERS: dict[ExportFormat, Callable[[nn.Module, torch.Tensor, Path], None]] = {
    "onnx": _onnx,
    "torchscript": _torchscript,
}


def exporter(
    spec: TimmSpec, classes: list[str], state_dict: dict[str, torch.Tensor], folder: Path
) -> Exporter:
    """Writes the model trained for `spec` (its `state_dict`, on the CPU) into `folder`, one format a call."""

    @cache
    def model() -> nn.Module:  # built on the first export, so a failure to build is that export's failure
        built = timm.create_model(spec.model, pretrained=False, num_classes=len(classes))
        built.load_state_dict(state_dict)
        return built.eval()

    def export(export_format: ExportFormat) -> Path:
        size = spec.hyperparameters.image_size
        path = folder / ARTIFACTS[export_format]
        with warnings.catch_warnings():
            # torch deprecates TorchScript and the TorchScript-based ONNX exporter in favour of torch.export;
            # both still write exactly the files asked for.
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
            WRITERS[export_format](model(), torch.randn(1, 3, size, size), path)
        return path

    return export
