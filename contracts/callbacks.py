"""HTTP callback bodies: trainer -> events service (`/v1/callbacks/...`), authenticated by the callback JWT.

The job id and attempt come from the token, never from the body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import FiniteFloat, StorableJson, StorableStr
from contracts.output import MAX_LINES, OutputLine


class CallbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HeartbeatCallback(CallbackBody):
    pass


class HeartbeatAnswer(BaseModel):
    """`stop` is true when the trainer must stop (job cancelled, or this attempt is no longer current).
    `callback_token`: the trainer's token was past half its life, and this one replaces it (expiring at
    `expires_at`); the old one stays good until it expires."""

    stop: bool
    reason: str | None = None
    callback_token: str | None = None
    expires_at: datetime | None = None


class ProgressCallback(CallbackBody):
    epoch: int = Field(ge=0)
    epochs: int = Field(ge=1)
    metrics: dict[StorableStr, FiniteFloat] = Field(default_factory=dict)
    resumed_from_epoch: int | None = Field(
        default=None, ge=1, description="on a resumed attempt's first progress: its checkpoint's epoch"
    )
    epoch_seconds: FiniteFloat | None = Field(default=None, ge=0, description="how long the epoch took")


class LogCallback(CallbackBody):
    """A log line of the trainer's own (`message`), or a batch of its captured output (`lines`, in order;
    `message` then says in a few words what the batch holds, for readers that know only `message`)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    message: StorableStr = Field(max_length=10_000)
    lines: list[OutputLine] | None = Field(
        default=None, max_length=MAX_LINES, description="the trainer's output, one entry a line"
    )
    batch_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="unique to the batch: a retried callback is recorded once",
    )


class ArtifactUploadRequest(CallbackBody):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")


class ArtifactUploadAnswer(BaseModel):
    upload_url: str
    expires_at: str


class ArtifactCompleteCallback(CallbackBody):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class DoneCallback(CallbackBody):
    """The attempt's last word. `retryable` (failed only): false when the failure would recur on every
    attempt (a spec or model name the framework refuses, a dataset or weights that do not fit, CUDA out of
    memory), so the job fails at once instead of spending its attempts; the reason says why. `preempted`:
    the trainer was told to stop (SIGTERM: an eviction, a spot reclaim) and saved a resume checkpoint; the
    job runs again, its attempt unchanged."""

    status: Literal["succeeded", "failed", "cancelled", "preempted"]
    reason: StorableStr | None = Field(default=None, max_length=10_000)
    metrics: StorableJson = Field(default_factory=dict)
    retryable: bool = Field(
        default=True, description="failed only: false when another attempt would fail the same way"
    )
