"""Shared vocabulary: job states, event types, the job specification."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

POOL_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class JobState(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class EventType(StrEnum):
    SUBMITTED = "job.submitted"
    QUEUED = "job.queued"
    RUNNING = "job.running"
    PROGRESS = "job.progress"
    LOG = "job.log"
    ARTIFACT = "job.artifact"
    RETRYING = "job.retrying"
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELLED = "job.cancelled"

    @property
    def terminal(self) -> bool:
        return self in (EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELLED)


class Hyperparameters(BaseModel):
    """Training hyperparameters common to every framework."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=10, ge=1, le=10_000)
    batch_size: int = Field(default=16, ge=1, le=4096)
    image_size: int = Field(default=224, ge=16, le=4096)
    learning_rate: float = Field(default=1e-3, gt=0, le=10)


class JobSpec(BaseModel):
    """What to train: the part of a job a trainer needs (it arrives as `VTP_JOB_SPEC`)."""

    model_config = ConfigDict(extra="forbid")

    framework: Literal["timm"]
    task: Literal["classify"]
    model: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
