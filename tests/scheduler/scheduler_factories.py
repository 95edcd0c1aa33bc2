"""Builders of inputs for the scheduler tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from contracts.commands import CancelJob, DatasetRef, SubmitJob
from contracts.jobs import TimmSpec
from contracts.reports import ArtifactReport, DoneReport, HeartbeatReport, LogReport, ProgressReport
from services.scheduler.core import Policy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = Policy(heartbeat_timeout=60, backoff_base=10, backoff_max=600)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def submit(
    job_id: str | None = None, max_attempts: int = 3, pool: str = "local", time: float = 0
) -> SubmitJob:
    return SubmitJob(
        job_id=job_id or uuid4().hex,
        project_id="proj",
        name="demo",
        spec=TimmSpec(framework="timm", task="classify", model="resnet18"),
        dataset=DatasetRef(id="ds1", format="imagefolder", storage_key="datasets/ds1/data.zip"),
        pool=pool,
        max_attempts=max_attempts,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        submitted_at=at(time),
    )


def cancel(job_id: str, time: float = 1, project_id: str = "proj") -> CancelJob:
    return CancelJob(job_id=job_id, project_id=project_id, reason="user", trace_id="t", requested_at=at(time))


def heartbeat(job_id: str, attempt: int = 1, time: float = 1) -> HeartbeatReport:
    return HeartbeatReport(job_id=job_id, attempt=attempt, time=at(time))


def progress(job_id: str, attempt: int = 1, time: float = 1) -> ProgressReport:
    return ProgressReport(
        job_id=job_id, attempt=attempt, time=at(time), epoch=1, epochs=3, metrics={"loss": 0.5}
    )


def log_line(job_id: str, attempt: int = 1, time: float = 1) -> LogReport:
    return LogReport(job_id=job_id, attempt=attempt, time=at(time), level="info", message="hello")


def artifact(job_id: str, attempt: int = 1, time: float = 1) -> ArtifactReport:
    return ArtifactReport(
        job_id=job_id,
        attempt=attempt,
        time=at(time),
        name="best.pt",
        size=3,
        sha256="0" * 64,
        storage_key=f"jobs/{job_id}/artifacts/best.pt",
    )


def done(
    job_id: str, status: str = "succeeded", attempt: int = 1, time: float = 1, reason: str | None = None
):
    return DoneReport(
        job_id=job_id, attempt=attempt, time=at(time), status=status, reason=reason, metrics={"acc": 0.9}
    )
