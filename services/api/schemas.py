"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.jobs import POOL_PATTERN, JobSpec, JobState
from services.api.models import Artifact, Dataset, Job

DatasetFormat = Literal["imagefolder"]


class JobCreate(JobSpec):
    """`POST /v1/jobs`: the job spec plus its dataset, pool and retry budget."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    dataset: str = Field(min_length=1, max_length=64, description="Id of a dataset of the caller's project.")
    pool: str = Field(default="local", pattern=POOL_PATTERN)
    max_attempts: int = Field(default=3, ge=1, le=100)

    def spec(self) -> JobSpec:
        return JobSpec.model_validate(self.model_dump(include=set(JobSpec.model_fields)))


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
