"""Export formats: what a job may ask its trainer to write after training, besides its checkpoint. Each
works offline and becomes one artifact of the job."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from contracts.base import absent

ExportFormat = Literal["onnx", "torchscript"]


def _each_once(formats: list[ExportFormat]) -> list[ExportFormat] | None:
    # Asking twice is asking once; an empty list asks for nothing, which a spec says by leaving `export` out.
    return list(dict.fromkeys(formats)) or None


ExportFormats = Annotated[
    list[ExportFormat],
    AfterValidator(_each_once),
    Field(
        description="Formats to export the trained model to, each an artifact of the job: `onnx` (runs in "
        "onnxruntime) and `torchscript` (loads with `torch.jit.load`). A failed export does not fail a job "
        "that trained: a `job.log` warning and the final metrics' `export_failed` say why.",
        examples=[["onnx", "torchscript"]],
    ),
]

# What a spec carries: left out when absent, as `weights` is.
OptionalExports = Annotated[ExportFormats | None, Field(exclude_if=absent)]
