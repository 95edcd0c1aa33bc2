"""The job specification of an Ultralytics job (`VTP_JOB_SPEC`; read with `TrainerEnv`, `spec_model=`).

`contracts.jobs.JobSpec` only knows timm so far; until it is widened, this package parses the spec itself.
The shape is meant for adoption by contracts as is: framework, task, model (an Ultralytics model YAML),
hyperparameters (Ultralytics train-argument names, checked against `hyperparameters.ALLOWED`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainers.ultralytics import hyperparameters

Task = Literal["detect", "segment", "classify"]

# `yolov8n.yaml`, `yolo11s-seg.yaml`, `yolo26m-cls.yaml`...: a model built from Ultralytics' own YAMLs, with
# no download. The suffix names the task.
MODEL_PATTERN = re.compile(r"^(yolo(?:v\d+|\d+)[nsmlx]?)(-seg|-cls)?\.yaml$")
TASK_SUFFIX: Mapping[str, str] = {"detect": "", "segment": "-seg", "classify": "-cls"}
# Which dataset formats each task trains on (segment polygons also train a detector: Ultralytics takes the
# polygon's bounding box).
DATASET_FORMATS: Mapping[str, tuple[str, ...]] = {
    "detect": ("yolo-detect", "yolo-segment"),
    "segment": ("yolo-segment",),
    "classify": ("imagefolder",),
}


class UltralyticsSpec(BaseModel):
    """What to train with Ultralytics YOLO."""

    model_config = ConfigDict(extra="forbid")

    framework: Literal["ultralytics"]
    task: Task
    model: str = Field(min_length=1, max_length=200, examples=["yolo11n.yaml", "yolo11n-seg.yaml"])
    hyperparameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("hyperparameters")
    @classmethod
    def _known_arguments(cls, value: dict[str, Any]) -> dict[str, Any]:
        found = hyperparameters.problems(value)
        if found:
            raise ValueError("; ".join(found))
        return value

    @model_validator(mode="after")
    def _model_fits_task(self) -> UltralyticsSpec:
        match = MODEL_PATTERN.match(self.model)
        if match is None:
            raise ValueError(
                f"model {self.model!r} is not an Ultralytics model YAML such as yolo11n.yaml, "
                "yolov8s-seg.yaml or yolo11n-cls.yaml"
            )
        suffix = match.group(2) or ""
        if suffix != TASK_SUFFIX[self.task]:
            wanted = f"{match.group(1)}{TASK_SUFFIX[self.task]}.yaml"
            raise ValueError(f"model {self.model!r} does not fit task {self.task!r} (use {wanted})")
        return self
