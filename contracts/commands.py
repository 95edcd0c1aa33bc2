"""Commands: api -> scheduler on VTP_COMMANDS."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from contracts.base import Message, StorableStr, absent
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
    idempotency_key: StorableStr | None = Field(
        default=None,
        max_length=255,
        exclude_if=absent,
        description="The `Idempotency-Key` the job was submitted with. `job_id` is then derived from the "
        "project and the key (a retry is the same message), and `job.submitted` carries the key on, so a job "
        "row rebuilt from the stream still answers a retry with this job.",
    )
    queue_timeout: int | None = Field(
        default=None,
        ge=1,
        exclude_if=absent,
        description='Seconds a queued attempt may wait for a runner; past it the job fails ("no runner took '
        "it within ...\"). Absent: the platform's default (`VTP_QUEUE_TIMEOUT`).",
    )

    max_preemptions: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        exclude_if=absent,
        description="How often the job may be preempted (SIGTERM: an eviction, a spot reclaim) and run "
        "again at the same attempt; a preemption past it counts as a failed attempt. Absent: "
        "`DEFAULT_MAX_PREEMPTIONS`.",
    )


DEFAULT_MAX_PREEMPTIONS = 10


class CancelJob(Message):
    job_id: str
    project_id: str
    reason: StorableStr | None = None
    trace_id: str
    requested_at: datetime
