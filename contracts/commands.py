"""Commands: api -> scheduler on VTP_COMMANDS."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from contracts.base import Message, StorableStr
from contracts.jobs import POOL_PATTERN, JobSpec


class DatasetRef(Message):
    """Where a job's dataset lives, resolved by the api at submit time."""

    id: str
    format: str
    storage_key: str = Field(description="Object key of the dataset archive in platform storage.")
    version: int | None = Field(default=None, description="The dataset's version under its name.")


class SubmitJob(Message):
    """Create a job. Published with `Nats-Msg-Id = job_id`, so a retried publish creates nothing twice."""

    job_id: str
    project_id: str
    name: StorableStr | None = None
    spec: JobSpec
    dataset: DatasetRef
    pool: str = Field(pattern=POOL_PATTERN)
    max_attempts: int = Field(ge=1, le=100)
    trace_id: str
    submitted_at: datetime


class CancelJob(Message):
    job_id: str
    project_id: str
    reason: StorableStr | None = None
    trace_id: str
    requested_at: datetime
