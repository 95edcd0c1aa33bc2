"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from contracts.commands import DatasetRef
from contracts.datasets import DatasetFormat as DatasetFormat  # the upload's `format` values
from contracts.jobs import POOL_PATTERN, SPEC_MODELS, Framework, JobSpec, JobState, dataset_mismatch
from services.api.errors import InvalidField
from services.api.models import Artifact, Dataset, Job


class JobCreate(BaseModel):
    """`POST /v1/jobs`: a job spec of either framework (`framework`, `task`, `model`, `hyperparameters`; see
    `contracts.jobs`) plus its dataset, pool and retry budget, all in one flat body."""

    model_config = ConfigDict(extra="forbid")

    framework: Framework
    task: str = Field(description="timm: classify. ultralytics: detect, segment or classify.")
    model: str = Field(
        description="timm: a model name (resnet18). ultralytics: a model YAML whose suffix fits the task "
        "(yolo11n.yaml, yolo11n-seg.yaml, yolo11n-cls.yaml)."
    )
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict,
        description="timm: epochs, batch_size, image_size, learning_rate. ultralytics: Ultralytics train "
        "arguments (epochs, imgsz, batch, lr0, ...); those the platform sets (device, project, ...) are "
        "refused.",
    )
    name: str | None = Field(default=None, max_length=200)
    dataset: str = Field(min_length=1, max_length=64, description="Id of a dataset of the caller's project.")
    pool: str = Field(default="local", pattern=POOL_PATTERN)
    max_attempts: int = Field(default=3, ge=1, le=100)

    _spec: JobSpec = PrivateAttr()

    @model_validator(mode="after")
    def _valid_spec(self) -> JobCreate:
        # The framework's own spec model checks the rest; its errors keep their places in this flat body
        # (`hyperparameters.epochs`), so a 422 names the field as the client sent it.
        fields = self.model_dump(include={"framework", "task", "model", "hyperparameters"})
        self._spec = SPEC_MODELS[self.framework].model_validate(fields)
        return self

    def spec(self) -> JobSpec:
        return self._spec

    def spec_for(self, dataset: DatasetRef) -> JobSpec:
        """The spec, once the dataset is known to fit it. A dataset whose format the spec cannot train on (an
        imagefolder for a YOLO detector) is refused here, at `dataset`, rather than failing the job later."""
        if problem := dataset_mismatch(self._spec, dataset.format):
            raise InvalidField(("body", "dataset"), problem, "dataset_format_mismatch")
        return self._spec


class JobOut(BaseModel):
    id: str
    name: str | None
    state: JobState
    attempt: int
    max_attempts: int
    version: int
    framework: str
    task: str
    model: str
    hyperparameters: dict[str, Any]
    dataset: str
    pool: str
    trace_id: str
    created_at: datetime
    updated_at: datetime
    metrics: dict[str, Any] | None = Field(description="Metrics of the latest epoch (job.progress).")
    final_metrics: dict[str, Any] | None = Field(description="Metrics reported when the job succeeded.")
    reason: str | None = Field(description="Why the job failed, was cancelled, or is being retried.")

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            name=job.name,
            state=JobState(job.state),
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            version=job.version,
            framework=job.framework,
            task=job.task,
            model=job.model,
            hyperparameters=job.hyperparameters,
            dataset=job.dataset_id,
            pool=job.pool,
            trace_id=job.trace_id,
            created_at=job.created_at,
            updated_at=job.updated_at,
            metrics=job.metrics,
            final_metrics=job.final_metrics,
            reason=job.reason,
        )


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class DatasetOut(BaseModel):
    id: str
    name: str
    format: str
    filename: str
    size: int
    sha256: str
    created_at: datetime

    @classmethod
    def of(cls, dataset: Dataset) -> DatasetOut:
        return cls(
            id=dataset.id,
            name=dataset.name,
            format=dataset.format,
            filename=dataset.filename,
            size=dataset.size,
            sha256=dataset.sha256,
            created_at=dataset.created_at,
        )


class DatasetPage(BaseModel):
    items: list[DatasetOut]


class ArtifactOut(BaseModel):
    name: str
    size: int
    sha256: str
    created_at: datetime
    download_path: str

    @classmethod
    def of(cls, artifact: Artifact) -> ArtifactOut:
        return cls(
            name=artifact.name,
            size=artifact.size,
            sha256=artifact.sha256,
            created_at=artifact.created_at,
            download_path=f"/v1/jobs/{artifact.job_id}/artifacts/{artifact.name}",
        )


class ErrorOut(BaseModel):
    error: str
    detail: Any = None
