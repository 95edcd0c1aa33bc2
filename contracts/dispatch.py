"""Dispatch: scheduler -> runner on `vtp.v1.dispatch.<pool>`: everything the runner hands to the trainer."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from contracts.base import Message, absent
from contracts.jobs import JobSpec

# The artifact a trainer uploads after every epoch (model, optimizer and epoch count) and an attempt after the
# first resumes from: the scheduler signs a GET URL for the job's artifact of this name into `resume_url`.
RESUME_CHECKPOINT = "last.pt"


def run_id(job_id: str, attempt: int, run: int = 0) -> str:
    """A run's name in message ids (its dispatch, its done report): `<job_id>:<attempt>`, and `:<run>` once
    the attempt was preempted and runs again."""
    return f"{job_id}:{attempt}:{run}" if run else f"{job_id}:{attempt}"


class DispatchJob(Message):
    """`resume_url` (attempts after the first) reads the job's `RESUME_CHECKPOINT`; it answers 404 while no
    attempt has finished an epoch yet."""

    job_id: str
    attempt: int
    pool: str
    spec: JobSpec
    callback_url: str
    callback_token: str
    dataset_url: str
    dataset_format: str
    resume_url: str | None = None
    weights_url: str | None = Field(
        default=None, description="A signed GET URL of the spec's `weights`, when it names any."
    )
    trace_id: str
    traceparent: str | None = None
    expires_at: datetime | None = Field(
        default=None,
        exclude_if=absent,
        description="When `callback_token` and the signed URLs expire. A runner taking the job later than "
        "shortly before asks the scheduler for new ones (contracts/credentials.py).",
    )
