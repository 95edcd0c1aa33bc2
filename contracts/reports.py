"""Reports: events service -> scheduler on `vtp.v1.report.<job_id>.<kind>`. One model per kind.

`time` is when the events service received the callback; the scheduler's state machine uses it as its clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from contracts.base import Message, absent
from contracts.output import OutputLine


class Report(Message):
    job_id: str
    attempt: int
    time: datetime
    trace_id: str | None = None
    run: int | None = Field(
        default=None,
        ge=1,
        exclude_if=absent,
        description="How often the attempt had been preempted when the reporting run of it started (absent: "
        "its first run). A report of an earlier run is rejected: that run was preempted.",
    )


class HeartbeatReport(Report):
    kind: Literal["heartbeat"] = "heartbeat"


class ProgressReport(Report):
    kind: Literal["progress"] = "progress"
    epoch: int = Field(ge=0)
    epochs: int = Field(ge=1)
    metrics: dict[str, float] = Field(
        default_factory=dict, description="e.g. train_loss, val_loss, val_accuracy"
    )
    resumed_from_epoch: int | None = Field(
        default=None, ge=1, description="on a resumed attempt's first progress: its checkpoint's epoch"
    )
    epoch_seconds: float | None = Field(default=None, ge=0, description="how long the epoch took")


class LogReport(Report):
    """A log line of the trainer's own, or a batch of its output (`lines`; `message` sums it up)."""

    kind: Literal["log"] = "log"
    level: str = "info"
    message: str
    lines: list[OutputLine] | None = Field(default=None, exclude_if=absent)


class ArtifactReport(Report):
    kind: Literal["artifact"] = "artifact"
    name: str
    size: int = Field(ge=0)
    sha256: str
    storage_key: str


class DoneReport(Report):
    kind: Literal["done"] = "done"
    status: Literal["succeeded", "failed", "cancelled", "preempted"]
    reason: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    retryable: bool = Field(
        default=True,
        description="failed only: false when another attempt would fail the same way (the job fails at once)",
    )


REPORT_KINDS: dict[str, type[Report]] = {
    "heartbeat": HeartbeatReport,
    "progress": ProgressReport,
    "log": LogReport,
    "artifact": ArtifactReport,
    "done": DoneReport,
}
