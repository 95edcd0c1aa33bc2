"""The scheduler's tables (`scheduler_`): job state, the log of every input with its outcome, and the outbox
of messages committed decisions still owe the stream."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts.commands import DEFAULT_MAX_PREEMPTIONS


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class JobRow(Base):
    """Current state of one job. Only the scheduler writes it, always under `SELECT ... FOR UPDATE`."""

    __tablename__ = "scheduler_jobs"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    dataset: Mapped[dict[str, Any]] = mapped_column(JSONB)
    pool: Mapped[str] = mapped_column(String(63))
    max_attempts: Mapped[int] = mapped_column(Integer)
    trace_id: Mapped[str] = mapped_column(String(64))
    heartbeat_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the job entered its state (the time of the input that moved it): what queue and run times
    # are measured from.
    state_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The job's own queue timeout (seconds; none: the policy's), and when its queued attempt fails unless
    # a runner takes it first.
    queue_timeout: Mapped[float | None] = mapped_column(Float)
    queue_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Times the job was preempted (its attempt ran again, unchanged), and how often it may be.
    preemptions: Mapped[int] = mapped_column(Integer, server_default="0")
    max_preemptions: Mapped[int] = mapped_column(Integer, server_default=str(DEFAULT_MAX_PREEMPTIONS))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        # The ticker's questions: whose heartbeat deadline passed, whose retry time came, who waited too long.
        Index(
            "ix_scheduler_jobs_heartbeat_deadline",
            "heartbeat_deadline",
            postgresql_where=text("heartbeat_deadline IS NOT NULL"),
        ),
        Index("ix_scheduler_jobs_retry_at", "retry_at", postgresql_where=text("retry_at IS NOT NULL")),
        Index("ix_scheduler_jobs_queued_pool", "pool", postgresql_where=text("state = 'QUEUED'")),
        Index(
            "ix_scheduler_jobs_queue_deadline",
            "queue_deadline",
            postgresql_where=text("queue_deadline IS NOT NULL"),
        ),
    )


class InputRow(Base):
    """Every input the scheduler consumed, in the order it was applied per job, with its outcome and the
    policy in force: enough to replay a job's history through `decide` and get the same events."""

    __tablename__ = "scheduler_inputs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64))
    # The message it came in (`<stream>:<stream sequence>`; none for ticks): a redelivery is recognised by it.
    source: Mapped[str | None] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    policy: Mapped[dict[str, Any]] = mapped_column(JSONB)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    # The job's version after this input (unchanged when rejected), and how many events it produced.
    version: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_scheduler_inputs_job_id", "job_id", "id"),
        Index(
            "ix_scheduler_inputs_job_id_source",
            "job_id",
            "source",
            unique=True,
            postgresql_where=text("source IS NOT NULL"),
        ),
    )


class OutboxRow(Base):
    """A message a committed decision owes the stream: written in the decision's transaction, published
    after the commit, deleted once its PubAck came. What stays here after a crash is published again."""

    __tablename__ = "scheduler_outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64))
    stream: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    msg_id: Mapped[str] = mapped_column(String(160))
    headers: Mapped[dict[str, str]] = mapped_column(JSONB)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_scheduler_outbox_job_id", "job_id", "id"),)
