"""The api's tables (prefix `api_`): projects and their keys, datasets, uploaded models, and the jobs read
model."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "api_projects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    keys: Mapped[list[ApiKey]] = relationship(back_populates="project", lazy="raise")


class ApiKey(Base):
    """Only the sha256 of a key is stored; the key itself is shown once, when it is made."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("api_projects.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    project: Mapped[Project] = relationship(back_populates="keys", lazy="raise")


class DatasetStatus(StrEnum):
    """VALIDATING until its validation job ends; then READY (trainable), REJECTED (problems found) or FAILED
    (the validation job itself failed). Only READY is final for training; none ever changes again."""

    VALIDATING = "VALIDATING"
    READY = "READY"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


class Dataset(Base):
    """One immutable version of a named dataset: `version` counts 1, 2, ... per project and name."""

    __tablename__ = "api_datasets"
    __table_args__ = (
        Index("ix_api_datasets_project_created", "project_id", "created_at"),
        UniqueConstraint("project_id", "name", "version", name="uq_api_datasets_project_name_version"),
        Index("ix_api_datasets_validation_job", "validation_job_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("api_projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(BigInteger)
    # Of the archive as uploaded; `content_hash` (from validation) is of the files in it, whatever archive.
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    content_hash: Mapped[str | None] = mapped_column(String(80))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    problems: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    problem_count: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    validation_job_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """A job as users see it: written at submit, then kept current from the job-event stream."""

    __tablename__ = "api_jobs"
    __table_args__ = (
        UniqueConstraint("project_id", "idempotency_key", name="uq_api_jobs_project_idempotency_key"),
        Index("ix_api_jobs_project_created", "project_id", "created_at", "id"),
        Index("ix_api_jobs_project_state_created", "project_id", "state", "created_at", "id"),
        # A pool's active jobs in queue order (`services.api.pending`); the jobs not QUEUED or RUNNING, nearly
        # all of them, are not in it, and a submit (PENDING) writes no entry.
        Index(
            "ix_api_jobs_pool_active",
            "pool",
            "state",
            "queued_at",
            "id",
            postgresql_where=text("state IN ('QUEUED', 'RUNNING')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("api_projects.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    # The version of the last job event applied; 0 until the first one arrives.
    version: Mapped[int] = mapped_column(Integer, default=0)
    framework: Mapped[str] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    dataset_id: Mapped[str] = mapped_column(String(32))
    dataset_version: Mapped[int | None] = mapped_column(Integer)
    pool: Mapped[str] = mapped_column(String(63))
    trace_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    final_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    reason: Mapped[str | None] = mapped_column(Text)
    # Times the job was preempted and ran again at the same attempt (job.preempted).
    preemptions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # The starting weights the job named (`contracts.weights`), if any.
    weights: Mapped[str | None] = mapped_column(String(240))
    # The export formats the job asked for (`contracts.exports`), if any.
    export: Mapped[list[str] | None] = mapped_column(JSONB)
    # When the job took its place in its pool's dispatch queue (its latest `job.queued`); null while a retry
    # waits out its backoff (until `retry_at`), when it is in no queue.
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Artifact(Base):
    __tablename__ = "api_artifacts"

    job_id: Mapped[str] = mapped_column(ForeignKey("api_jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UploadedModel(Base):
    """Weights uploaded to start jobs from (`POST /v1/models`); the file is in storage at `storage_key`."""

    __tablename__ = "api_models"
    __table_args__ = (Index("ix_api_models_project_created", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("api_projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
