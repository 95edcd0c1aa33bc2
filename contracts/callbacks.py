"""HTTP callback bodies: trainer -> events service (`/v1/callbacks/...`), authenticated by the callback JWT.

The job id and attempt come from the token, never from the body.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import FiniteFloat, StorableJson, StorableStr


class CallbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HeartbeatCallback(CallbackBody):
    pass


class HeartbeatAnswer(BaseModel):
    """`stop` is true when the trainer must stop (job cancelled, or this attempt is no longer current)."""

    stop: bool
    reason: str | None = None


class ProgressCallback(CallbackBody):
    epoch: int = Field(ge=0)
    epochs: int = Field(ge=1)
    metrics: dict[StorableStr, FiniteFloat] = Field(default_factory=dict)
    resumed_from_epoch: int | None = Field(
        default=None, ge=1, description="on a resumed attempt's first progress: its checkpoint's epoch"
    )
    epoch_seconds: FiniteFloat | None = Field(default=None, ge=0, description="how long the epoch took")


class LogCallback(CallbackBody):
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: StorableStr = Field(max_length=10_000)


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
    status: Literal["succeeded", "failed", "cancelled"]
    reason: StorableStr | None = Field(default=None, max_length=10_000)
    metrics: StorableJson = Field(default_factory=dict)
