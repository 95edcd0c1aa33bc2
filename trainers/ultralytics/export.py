"""The trained YOLO model in other formats, written by Ultralytics' own exporter from `best.pt` as
`yolo export` would (the training's `imgsz`, batch 1, on the CPU): `best.onnx` (slimmed with onnxslim) and
`best.torchscript`, next to it.

Offline: the exporter checks its requirements (onnx, onnxslim, onnxruntime) and would pip-install a missing
one, but `offline.prepare` turns that off (`YOLO_OFFLINE`, `YOLO_AUTOINSTALL`); the `trainers` extra
installs what ONNX needs, and a missing package fails that export only."""

from __future__ import annotations

from pathlib import Path

from contracts.exports import ExportFormat
from trainers.exports import Exporter


def exporter(weights: Path) -> Exporter:
    """Writes `weights` (an Ultralytics checkpoint) in one format a call, next to it."""

    def export(export_format: ExportFormat) -> Path:
        from ultralytics import YOLO

        return Path(YOLO(str(weights)).export(format=export_format, device="cpu"))

    return export
