"""Dataset validation as a job: the spec the api submits for every uploaded dataset, and what the validation
trainer (`python -m trainers.validation`) reports back.

The trainer validates the job's dataset (its format is the dataset's, `DispatchJob.dataset_format`), uploads
the full report as the artifact `report.json`, and reports `done(succeeded)` whether the dataset is READY or
REJECTED: the job succeeds when validation ran to a verdict. Its done metrics are the verdict
(`ValidationMetrics`), from which the api moves the dataset to READY or REJECTED; a failed or cancelled
validation job leaves the dataset FAILED."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from contracts.datasets import DatasetFormat

REPORT_ARTIFACT = "report.json"
# The framework name of validation jobs (their trainer is `trainers.validation`).
VALIDATION_FRAMEWORK = "validation"


class ValidationLimits(BaseModel):
    """How much the archive may unpack to; a limit left out is the validator's default (20 GiB, a million
    files, a compression ratio of 200)."""

    model_config = ConfigDict(extra="forbid")

    max_total_bytes: int | None = Field(default=None, ge=1)
    max_files: int | None = Field(default=None, ge=1)
    max_ratio: float | None = Field(default=None, gt=1)


class DatasetValidationSpec(BaseModel):
    """Validate a dataset: safe extraction within `limits`, the format's checks, a content hash."""

    model_config = ConfigDict(extra="forbid")

    framework: Literal["validation"]
    task: Literal["validate"] = "validate"
    model: Literal["dataset"] = "dataset"
    limits: ValidationLimits = Field(default_factory=ValidationLimits)

    def dataset_formats(self) -> tuple[DatasetFormat, ...]:
        return get_args(DatasetFormat)


class ValidationMetrics(BaseModel):
    """The done metrics of a succeeded validation job: the report without its format (the dataset has it).
    `summary` is null when the archive could not be extracted; `summary_truncated` marks a summary cut down
    to its totals to keep the message small (the whole one is in `report.json`)."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["READY", "REJECTED"]
    content_hash: str | None = None
    summary: dict[str, Any] | None = None
    summary_truncated: bool = False
    problems: list[dict[str, Any]] = Field(default_factory=list)
    problem_count: int = 0
