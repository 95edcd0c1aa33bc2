"""Dispatch: scheduler -> runner on `vtp.v1.dispatch.<pool>`: everything the runner hands to the trainer."""

from __future__ import annotations

from contracts.base import Message
from contracts.jobs import JobSpec


class DispatchJob(Message):
    job_id: str
    attempt: int
    pool: str
    spec: JobSpec
    callback_url: str
    callback_token: str
    dataset_url: str
    dataset_format: str
    resume_url: str | None = None
    trace_id: str
    traceparent: str | None = None
