"""Stream, subject and consumer names. Every subject carries its version (`v1`)."""

from __future__ import annotations

VERSION = "v1"
PREFIX = f"vtp.{VERSION}"

# Streams
COMMANDS_STREAM = "VTP_COMMANDS"
DISPATCH_STREAM = "VTP_DISPATCH"
REPORTS_STREAM = "VTP_REPORTS"
EVENTS_STREAM = "VTP_EVENTS"

# Commands: api -> scheduler
SUBMIT_JOB = f"{PREFIX}.cmd.job.submit"
CANCEL_JOB = f"{PREFIX}.cmd.job.cancel"
COMMANDS_ALL = f"{PREFIX}.cmd.>"

# Dispatch: scheduler -> runner, one subject per pool
DISPATCH_ALL = f"{PREFIX}.dispatch.>"

# Reports: events -> scheduler
REPORTS_ALL = f"{PREFIX}.report.>"

# Credentials: runner / events -> scheduler, core NATS request/reply (contracts/credentials.py)
CREDENTIALS_ALL = f"{PREFIX}.credentials.>"
CREDENTIALS_RENEW = f"{PREFIX}.credentials.renew"

# Job events: scheduler -> api, events, other systems (the replayable history)
EVENTS_ALL = f"{PREFIX}.job.>"

# Durable consumers
SCHEDULER_COMMANDS_CONSUMER = "scheduler-commands"
SCHEDULER_REPORTS_CONSUMER = "scheduler-reports"
API_READ_MODEL_CONSUMER = "api-read-model"
EVENTS_JOB_STATUS_CONSUMER = "events-job-status"


def dispatch_subject(pool: str) -> str:
    return f"{PREFIX}.dispatch.{pool}"


def take_over_subject(pool: str) -> str:
    """Where a pool's runners ask for a job's credentials at take-over (their permissions name their pool)."""
    return f"{PREFIX}.credentials.take.{pool}"


def pool_consumer(pool: str) -> str:
    """The durable pull consumer a pool's runners share (and that KEDA / the local pool watch for lag)."""
    return f"pool-{pool}"


def report_subject(job_id: str, kind: str) -> str:
    return f"{PREFIX}.report.{job_id}.{kind}"


def report_job(subject: str) -> str | None:
    """The job a report subject is about (`report_subject`'s `job_id`); None for any other subject."""
    parts = subject.split(".")
    return parts[3] if len(parts) == 5 and subject.startswith(f"{PREFIX}.report.") else None


def event_subject(job_id: str, event_type: str) -> str:
    """`job.progress` -> `vtp.v1.job.<job_id>.progress`."""
    return f"{PREFIX}.job.{job_id}.{event_type.removeprefix('job.')}"


def job_events_filter(job_id: str) -> str:
    return f"{PREFIX}.job.{job_id}.>"
