"""Request and response bodies of the REST API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from contracts.base import StorableJson, StorableStr
from contracts.commands import DatasetRef
from contracts.datasets import DatasetFormat as DatasetFormat  # the upload's `format` values
from contracts.exports import ExportFormats
from contracts.jobs import POOL_PATTERN, SPEC_MODELS, Framework, JobSpec, JobState, dataset_mismatch
from contracts.weights import WeightsReference
from services.api.errors import InvalidField
from services.api.models import Artifact, Dataset, DatasetStatus, Job

if TYPE_CHECKING:
    from services.api.pending import Pending


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
    hyperparameters: StorableJson = Field(
        default_factory=dict,
        description="timm: epochs, batch_size, image_size, learning_rate. ultralytics: Ultralytics train "
        "arguments (epochs, imgsz, batch, lr0, ...); those the platform sets (device, project, ...) are "
        "refused.",
    )
    name: StorableStr | None = Field(default=None, max_length=200)
    dataset: StorableStr = Field(
        min_length=1,
        max_length=120,
        description="A dataset of the caller's project: its id, `name:version`, or `name` (its newest READY "
        "version). It must be READY.",
    )
    pool: str = Field(default="local", pattern=POOL_PATTERN)
    max_attempts: int = Field(default=3, ge=1, le=100)
    queue_timeout: int | None = Field(
        default=None,
        ge=1,
        le=365 * 86_400,
        description="Seconds an attempt may wait for a runner; past it the job fails. Default: the "
        "platform's (VTP_QUEUE_TIMEOUT, a week).",
    )
    max_preemptions: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="How often the job may be preempted (an eviction, a spot reclaim) and resume at the same "
        "attempt; past it a preemption counts as a failed attempt. Default: 10.",
    )
    weights: WeightsReference | None = None
    export: ExportFormats | None = None

    _spec: JobSpec = PrivateAttr()

    @model_validator(mode="after")
    def _valid_spec(self) -> JobCreate:
        # The framework's own spec model checks the rest; its errors keep their places in this flat body
        # (`hyperparameters.epochs`), so a 422 names the field as the client sent it.
        fields = self.model_dump(
            include={"framework", "task", "model", "hyperparameters", "weights", "export"}
        )
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
    dataset_version: int | None = Field(description="The version of the dataset the job trains on.")
    pool: str
    trace_id: str
    created_at: datetime
    updated_at: datetime
    metrics: dict[str, Any] | None = Field(description="Metrics of the latest epoch (job.progress).")
    final_metrics: dict[str, Any] | None = Field(description="Metrics reported when the job succeeded.")
    reason: str | None = Field(
        description="Why the job failed, was cancelled, is being retried, or was preempted."
    )
    preemptions: int = Field(
        default=0, description="Times it was preempted and ran again at the same attempt (job.preempted)."
    )
    weights: str | None = Field(default=None, description="The starting weights the job named.")
    export: list[str] | None = Field(default=None, description="The export formats the job asked for.")
    queue_position: int | None = Field(
        default=None,
        description="QUEUED: its place in its pool's queue, of every project's jobs (1: the next one a "
        "runner takes); null otherwise, and during a retry's backoff.",
    )
    pending_reason: str | None = Field(
        default=None, description="QUEUED: why it waits, in words; null otherwise."
    )

    @classmethod
    def of(cls, job: Job, pending: Pending | None = None) -> JobOut:
        """`pending`: why it waits, if it is QUEUED (`services.api.pending`)."""
        out = cls.of_row({column: getattr(job, column) for column in _JOB_COLUMNS})
        if pending is not None:
            out.queue_position, out.pending_reason = pending.position, pending.reason
        return out

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> JobOut:
        """From a job's columns by name (a new job's row may lack the columns only events fill)."""
        return cls(
            id=row["id"],
            name=row["name"],
            state=JobState(row["state"]),
            attempt=row["attempt"],
            max_attempts=row["max_attempts"],
            version=row["version"],
            framework=row["framework"],
            task=row["task"],
            model=row["model"],
            hyperparameters=row["hyperparameters"],
            dataset=row["dataset_id"],
            dataset_version=row["dataset_version"],
            pool=row["pool"],
            trace_id=row["trace_id"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            metrics=row.get("metrics"),
            final_metrics=row.get("final_metrics"),
            reason=row.get("reason"),
            preemptions=row.get("preemptions") or 0,
            weights=row.get("weights"),
            export=row.get("export"),
        )


_JOB_COLUMNS = tuple(column.key for column in Job.__table__.columns)


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class DatasetOut(BaseModel):
    """One immutable version of a named dataset, and what its validation found."""

    id: str
    name: str
    version: int = Field(description="1, 2, ... per project and name.")
    format: str
    status: DatasetStatus = Field(
        description="VALIDATING until its validation job ends, then READY (jobs may train on it), REJECTED "
        "(see `problems`) or FAILED (the validation could not run; see `reason`)."
    )
    filename: str
    size: int
    sha256: str = Field(description="Of the archive as uploaded.")
    content_hash: str | None = Field(
        description="`sha256:<hex>` of the dataset's files (paths and bytes), whatever archive they came in."
    )
    summary: dict[str, Any] | None = Field(
        description="classes, per split the images (YOLO: labels, background images, instances per class; "
        "imagefolder: images per class), files, total_bytes."
    )
    problems: list[dict[str, Any]] = Field(description="The first 50 problems: {file, line, message}.")
    problem_count: int
    reason: str | None = Field(description="Why the validation failed (FAILED).")
    validation_job_id: str | None = Field(
        description="The job that validates it: follow it at /v1/jobs/{id}/events; its report.json artifact "
        "is the whole report."
    )
    created_at: datetime

    @classmethod
    def of(cls, dataset: Dataset) -> DatasetOut:
        return cls(
            id=dataset.id,
            name=dataset.name,
            version=dataset.version,
            format=dataset.format,
            status=DatasetStatus(dataset.status),
            filename=dataset.filename,
            size=dataset.size,
            sha256=dataset.sha256,
            content_hash=dataset.content_hash,
            summary=dataset.summary,
            problems=dataset.problems or [],
            problem_count=dataset.problem_count,
            reason=dataset.reason,
            validation_job_id=dataset.validation_job_id,
            created_at=dataset.created_at,
        )


class DatasetCreated(DatasetOut):
    created: bool = Field(
        description="False when this very archive was uploaded under this name before: the answer is that "
        "version (200), and nothing new was stored or validated."
    )


class DatasetFromUpload(BaseModel):
    """`POST /v1/datasets` as JSON: make a dataset of an archive PUT to an upload URL."""

    model_config = ConfigDict(extra="forbid")

    name: StorableStr = Field(min_length=1, max_length=100)
    format: DatasetFormat
    upload_id: StorableStr = Field(description="From `POST /v1/datasets/uploads`.")
    filename: StorableStr | None = Field(default=None, max_length=255, description="The archive's file name.")


class UploadOut(BaseModel):
    upload_id: str
    url: str = Field(description="PUT the archive here (the body is the file), then POST /v1/datasets.")
    method: str = "PUT"
    expires_at: datetime
    max_bytes: int


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


class ArtifactUrl(BaseModel):
    """A signed URL that downloads one artifact without a key (a browser follows it), until `expires_at`."""

    url: str = Field(description="GET it: the file, as an attachment named for the artifact.")
    expires_at: datetime


class ModelOut(BaseModel):
    """Uploaded weights to start jobs from: a job names them with `"weights": <id>`."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    filename: str
    size: int
    sha256: str
    created_at: datetime


class ModelPage(BaseModel):
    items: list[ModelOut]


class MetricPoint(BaseModel):
    epoch: int
    value: float
    attempt: int = Field(description="the attempt that reported it (the last one to train this epoch)")
    time: datetime


class AttemptMark(BaseModel):
    """Where an attempt's reports begin on the charts: a retry, or a resume from a checkpoint."""

    attempt: int
    first_epoch: int
    resumed_from_epoch: int | None = None


class MetricsHistory(BaseModel):
    epochs: int | None = Field(description="the epochs the job trains for, as its last report said")
    series: dict[str, list[MetricPoint]] = Field(description="per metric, a point per epoch, in epoch order")
    attempts: list[AttemptMark]


class PoolOut(BaseModel):
    """A declared pool (its dispatch consumer exists) and its load, over every project's jobs."""

    name: str
    waiting: int = Field(description="jobs QUEUED on it (a retry's backoff included)")
    running: int = Field(description="jobs RUNNING on it")
    runners_waiting: int = Field(description="runners waiting for a job now")
    dispatches_held: int = Field(description="dispatches a runner has taken and not settled yet")
    last_taken_at: datetime | None = Field(description="when a runner last took a job from it")
    oldest_waiting_seconds: float | None = Field(description="how long the oldest waiting job has waited")


class PoolList(BaseModel):
    items: list[PoolOut]


class ErrorOut(BaseModel):
    error: str
    detail: Any = None
