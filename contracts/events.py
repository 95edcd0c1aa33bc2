"""Job events: scheduler -> everyone on `vtp.v1.job.<job_id>.<type>` (VTP_EVENTS, the replayable history)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from contracts.base import Message
from contracts.jobs import EventType, JobState


class JobEvent(Message):
    """One thing that happened to a job. Published with `Nats-Msg-Id = <job_id>:<version>`.

    `version` counts the job's events from 1 without gaps, so a consumer can apply them idempotently.
    `time` comes from the input that caused the event, never from the clock at publish time.

    Payload by type:
    - job.submitted: name, spec, dataset, pool, max_attempts; idempotency_key when it was submitted with one
    - job.queued: pool
    - job.running: (empty)
    - job.progress: epoch, epochs, metrics; resumed_from_epoch on the first progress of an attempt that
      resumed from a checkpoint; epoch_seconds when the trainer timed the epoch
    - job.log: level, message; lines (each a stream and a text) when it carries a batch of the trainer's
      captured output, `message` then summing it up
    - job.artifact: name, size, sha256, storage_key
    - job.retrying: reason, retry_at, next_attempt
    - job.preempted: reason, preemptions (the job's count so far); state QUEUED, attempt unchanged, a
      `job.queued` follows
    - job.succeeded: metrics
    - job.failed: reason; `retryable: false` when no retry could help (its trainer said another attempt
      would fail the same way, or the job waited past its queue timeout): the job failed at that attempt,
      whatever attempts were left
    - job.cancelled: reason
    """

    job_id: str
    project_id: str
    type: EventType
    state: JobState
    attempt: int
    version: int = Field(ge=1)
    time: datetime
    trace_id: str
    payload: dict[str, Any] = Field(default_factory=dict)
