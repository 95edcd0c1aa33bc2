"""The job specification of an Ultralytics YOLO job: framework, task, model (an Ultralytics model YAML) and
hyperparameters (Ultralytics' own train-argument names, checked against `ultralytics_hyperparameters`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from contracts import ultralytics_hyperparameters
from contracts.base import storable_tree
from contracts.datasets import DatasetFormat
from contracts.exports import OptionalExports
from contracts.weights import OptionalWeights

Task = Literal["detect", "segment", "classify"]

# `yolov8n.yaml`, `yolo11s-seg.yaml`, `yolo26m-cls.yaml`...: a model built from Ultralytics' own YAMLs, with
# no download. The suffix names the task.
MODEL_PATTERN = re.compile(r"^(yolo(?:v\d+|\d+)[nsmlx]?)(-seg|-cls)?\.yaml$")
TASK_SUFFIX: Mapping[Task, str] = {"detect": "", "segment": "-seg", "classify": "-cls"}
SUFFIX_TASK: Mapping[str, Task] = {suffix: task for task, suffix in TASK_SUFFIX.items()}
# Which dataset formats each task trains on (segment polygons also train a detector: Ultralytics takes the
# polygon's bounding box).
TASK_DATASET_FORMATS: Mapping[Task, tuple[DatasetFormat, ...]] = {
    "detect": ("yolo-detect", "yolo-segment"),
    "segment": ("yolo-segment",),
    "classify": ("imagefolder",),
}


def task_of_model(model: str) -> Task | None:
    """The task a model YAML's name says (`yolo11n-seg.yaml` -> segment), None for no Ultralytics YAML."""
    match = MODEL_PATTERN.match(model)
    return None if match is None else SUFFIX_TASK[match.group(2) or ""]


def not_a_model_yaml(model: str) -> str:
    return (
        f"{model!r} is not an Ultralytics model YAML such as yolo11n.yaml, yolov8s-seg.yaml or "
        "yolo11n-cls.yaml"
    )


def _refusal(kind: str, message: str) -> PydanticCustomError:
    # The message goes in as context: a template of its own would read braces in user input as placeholders.
    return PydanticCustomError(kind, "{message}", {"message": message})


# The published schema lists every allowed argument with its type and bounds, so a consumer of the contract
# sees what a job may set; validation itself is `ultralytics_hyperparameters.problems`, which also says why.
Arguments = Annotated[
    dict[str, Any],
    AfterValidator(storable_tree),
    WithJsonSchema(ultralytics_hyperparameters.json_schema(), mode="validation"),
]


class UltralyticsSpec(BaseModel):
    """What to train with Ultralytics YOLO."""

    model_config = ConfigDict(extra="forbid")

    framework: Literal["ultralytics"]
    task: Task
    model: str = Field(min_length=1, max_length=200, examples=["yolo11n.yaml", "yolo11n-seg.yaml"])
    hyperparameters: Arguments = Field(default_factory=dict)
    weights: OptionalWeights = None
    export: OptionalExports = None

    def dataset_formats(self) -> tuple[DatasetFormat, ...]:
        return TASK_DATASET_FORMATS[self.task]

    @field_validator("model")
    @classmethod
    def _model_fits_task(cls, model: str, info: ValidationInfo) -> str:
        match = MODEL_PATTERN.match(model)
        if match is None:
            raise _refusal("ultralytics_model", not_a_model_yaml(model))
        task = info.data.get("task")  # absent when the task itself was refused
        if task is not None and task_of_model(model) != task:
            wanted = f"{match.group(1)}{TASK_SUFFIX[task]}.yaml"
            raise _refusal("model_task_mismatch", f"{model!r} does not fit task {task!r} (use {wanted})")
        return model

    @field_validator("hyperparameters")
    @classmethod
    def _known_arguments(cls, value: dict[str, Any]) -> dict[str, Any]:
        found = ultralytics_hyperparameters.problems(value)
        if found:
            # One error per argument, located at it (`hyperparameters.<name>`), as for any nested field.
            raise ValidationError.from_exception_data(
                "hyperparameters",
                [
                    InitErrorDetails(
                        type=_refusal(f"argument_{p.kind}", p.message),
                        loc=(p.name,),
                        input=value[p.name],
                    )
                    for p in found
                ],
            )
        return value
