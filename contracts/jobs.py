"""Shared vocabulary: job states, event types, the job specification."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contracts.datasets import DatasetFormat
from contracts.exports import OptionalExports
from contracts.ultralytics import UltralyticsSpec
from contracts.validation import DatasetValidationSpec
from contracts.weights import OptionalWeights

POOL_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class JobState(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class EventType(StrEnum):
    SUBMITTED = "job.submitted"
    QUEUED = "job.queued"
    RUNNING = "job.running"
    PROGRESS = "job.progress"
    LOG = "job.log"
    ARTIFACT = "job.artifact"
    RETRYING = "job.retrying"
    PREEMPTED = "job.preempted"
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELLED = "job.cancelled"

    @property
    def terminal(self) -> bool:
        return self in (EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELLED)


class Hyperparameters(BaseModel):
    """Training hyperparameters common to every framework."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=10, ge=1, le=10_000)
    batch_size: int = Field(default=16, ge=1, le=4096)
    image_size: int = Field(default=224, ge=16, le=4096)
    learning_rate: float = Field(default=1e-3, gt=0, le=10)


class TimmSpec(BaseModel):
    """What to train with timm: an image classifier by its timm model name."""

    model_config = ConfigDict(extra="forbid")

    framework: Literal["timm"]
    task: Literal["classify"]
    model: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    weights: OptionalWeights = None
    export: OptionalExports = None

    def dataset_formats(self) -> tuple[DatasetFormat, ...]:
        return ("imagefolder",)


# What to run: the part of a job a trainer needs (it arrives as `VTP_JOB_SPEC`), one model per framework.
# v1 published the timm spec alone; it is still the same shape, now one member of the union. `validation`
# is the platform's own job (validating an uploaded dataset); users submit only the training frameworks.
JobSpec = Annotated[TimmSpec | UltralyticsSpec | DatasetValidationSpec, Field(discriminator="framework")]
Framework = Literal["timm", "ultralytics"]
SPEC_MODELS: Mapping[str, type[TimmSpec] | type[UltralyticsSpec] | type[DatasetValidationSpec]] = {
    "timm": TimmSpec,
    "ultralytics": UltralyticsSpec,
    "validation": DatasetValidationSpec,
}
_JOB_SPEC: TypeAdapter[JobSpec] = TypeAdapter(JobSpec)


def parse_job_spec(data: object) -> JobSpec:
    """A spec of any framework from its JSON-compatible form (a dict, as stored or sent).

    A known framework's spec is validated by that framework's model, so an error is located at the spec's
    own field (`hyperparameters.epochs`), not under the union's tag (`timm.hyperparameters.epochs`).
    """
    framework = data.get("framework") if isinstance(data, Mapping) else None
    model = SPEC_MODELS.get(framework) if isinstance(framework, str) else None
    return model.model_validate(data) if model is not None else _JOB_SPEC.validate_python(data)


def dataset_mismatch(spec: JobSpec, dataset_format: str) -> str | None:
    """Why a dataset of this format cannot train the spec; None when it can."""
    formats = spec.dataset_formats()
    if dataset_format in formats:
        return None
    return (
        f"dataset format {dataset_format!r} does not fit {spec.framework} task {spec.task!r} "
        f"(use {' or '.join(formats)})"
    )
