"""The job state machine: `decide(job, input, policy) -> Decision`. Pure: no I/O, no clock.

PENDING -> QUEUED -> RUNNING -> {SUCCEEDED | FAILED | CANCELLED}; a failed attempt goes back to QUEUED after a
backoff (`job.retrying`, then `job.queued` on the tick at `retry_at`); a preempted run goes back to QUEUED at
once, its attempt unchanged (`job.preempted`, `job.queued`). Every event gets the next version
and the time of the input that caused it. Anything illegal is rejected with a reason, changing nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from contracts.commands import DEFAULT_MAX_PREEMPTIONS, CancelJob, SubmitJob
from contracts.events import JobEvent
from contracts.jobs import EventType, JobState
from contracts.reports import ArtifactReport, DoneReport, LogReport, ProgressReport, Report
from services.scheduler.core.backoff import backoff_seconds
from services.scheduler.core.model import Decision, Dispatch, Input, Job, Policy, Tick


class _Builder:
    """Applies one input's steps to a job, collecting the events (numbered from the job's version)."""

    def __init__(self, job: Job, time: datetime) -> None:
        self.job = job
        self.time = time
        self.events: list[JobEvent] = []
        self.effects: list[Dispatch] = []

    def emit(self, event_type: EventType, payload: dict[str, Any] | None = None, **changes: Any) -> None:
        if changes.get("state", self.job.state) != self.job.state:
            changes["state_since"] = self.time
            changes.setdefault("queue_deadline", None)  # waiting ends with QUEUED
        self.job = replace(self.job, version=self.job.version + 1, **changes)
        self.events.append(
            JobEvent(
                job_id=self.job.job_id,
                project_id=self.job.project_id,
                type=event_type,
                state=self.job.state,
                attempt=self.job.attempt,
                version=self.job.version,
                time=self.time,
                trace_id=self.job.trace_id,
                payload=payload or {},
            )
        )

    def queue(self, policy: Policy) -> None:
        """Hand the attempt to its pool; past its queue timeout without a runner, the job fails."""
        timeout = self.job.queue_timeout if self.job.queue_timeout is not None else policy.queue_timeout
        deadline = self.time + timedelta(seconds=timeout) if timeout else None
        self.emit(
            EventType.QUEUED,
            {"pool": self.job.pool},
            state=JobState.QUEUED,
            retry_at=None,
            queue_deadline=deadline,
        )
        self.effects.append(
            Dispatch(
                job_id=self.job.job_id, attempt=self.job.attempt, pool=self.job.pool, run=self.job.preemptions
            )
        )

    def fail_attempt(self, reason: str, policy: Policy, *, retryable: bool = True) -> None:
        """The current attempt failed: retry after the backoff, or fail the job once attempts are spent, or
        at once when the failure is not `retryable` (another attempt would fail the same way)."""
        attempt = self.job.attempt
        if not retryable or attempt >= self.job.max_attempts:
            self.emit(
                EventType.FAILED,
                {"reason": reason} if retryable else {"reason": reason, "retryable": False},
                state=JobState.FAILED,
                heartbeat_deadline=None,
                retry_at=None,
            )
            return
        retry_at = self.time + timedelta(
            seconds=backoff_seconds(attempt, policy.backoff_base, policy.backoff_max)
        )
        self.emit(
            EventType.RETRYING,
            {"reason": reason, "retry_at": retry_at.isoformat(), "next_attempt": attempt + 1},
            state=JobState.QUEUED,
            attempt=attempt + 1,
            heartbeat_deadline=None,
            retry_at=retry_at,
        )

    def decision(self) -> Decision:
        return Decision(state=self.job, events=tuple(self.events), effects=tuple(self.effects))


def _reject(job: Job | None, reason: str) -> Decision:
    return Decision(state=job, rejected_reason=reason)


def decide(job: Job | None, command: Input, policy: Policy) -> Decision:
    """Apply one input to a job's state (`None` when the scheduler has never seen the job)."""
    if isinstance(command, SubmitJob):
        return _submit(job, command, policy)
    if job is None:
        return _reject(None, "unknown job")
    if job.state.terminal:
        return _reject(job, f"job is {job.state.value}")
    if isinstance(command, CancelJob):
        return _cancel(job, command)
    if isinstance(command, Tick):
        return _tick(job, command, policy)
    return _report(job, command, policy)


def _submit(job: Job | None, command: SubmitJob, policy: Policy) -> Decision:
    if job is not None:
        return _reject(job, "duplicate submit")
    created = Job(
        job_id=command.job_id,
        project_id=command.project_id,
        name=command.name,
        state=JobState.PENDING,
        attempt=1,
        version=0,
        spec=command.spec,
        dataset=command.dataset,
        pool=command.pool,
        max_attempts=command.max_attempts,
        trace_id=command.trace_id,
        queue_timeout=command.queue_timeout,
        max_preemptions=(
            command.max_preemptions if command.max_preemptions is not None else DEFAULT_MAX_PREEMPTIONS
        ),
    )
    builder = _Builder(created, command.submitted_at)
    builder.emit(
        EventType.SUBMITTED,
        {
            "name": command.name,
            "spec": command.spec.model_dump(mode="json"),
            "dataset": command.dataset.model_dump(mode="json"),
            "pool": command.pool,
            "max_attempts": command.max_attempts,
            **({"idempotency_key": command.idempotency_key} if command.idempotency_key else {}),
            **({"queue_timeout": command.queue_timeout} if command.queue_timeout is not None else {}),
            **({"max_preemptions": command.max_preemptions} if command.max_preemptions is not None else {}),
        },
    )
    builder.queue(policy)
    return builder.decision()


def _cancel(job: Job, command: CancelJob) -> Decision:
    if command.project_id != job.project_id:
        return _reject(job, "cancel from another project")
    builder = _Builder(job, command.requested_at)
    builder.emit(
        EventType.CANCELLED,
        {"reason": command.reason},
        state=JobState.CANCELLED,
        heartbeat_deadline=None,
        retry_at=None,
    )
    return builder.decision()


def _tick(job: Job, tick: Tick, policy: Policy) -> Decision:
    builder = _Builder(job, tick.now)
    if job.retry_at is not None and tick.now >= job.retry_at:
        builder.queue(policy)
        return builder.decision()
    if job.queue_deadline is not None and tick.now >= job.queue_deadline:
        waited = (job.queue_deadline - job.state_since).total_seconds() if job.state_since else None
        within = f" within {waited:g} s" if waited is not None else ""
        builder.fail_attempt(f"no runner took it{within} (queue timeout)", policy, retryable=False)
        return builder.decision()
    if job.heartbeat_deadline is not None and tick.now >= job.heartbeat_deadline:
        builder.fail_attempt(f"no heartbeat for {policy.heartbeat_timeout:g} s", policy)
        return builder.decision()
    return _reject(job, "nothing due")


def _report(job: Job, report: Report, policy: Policy) -> Decision:
    if report.attempt != job.attempt:
        return _reject(job, f"report for attempt {report.attempt}, current attempt is {job.attempt}")
    if job.retry_at is not None:
        return _reject(job, f"attempt {job.attempt} is not dispatched yet")
    if (report.run or 0) != job.preemptions:
        return _reject(
            job,
            f"report of run {report.run or 0} of attempt {job.attempt}, which was preempted (now run "
            f"{job.preemptions})",
        )
    builder = _Builder(job, report.time)
    deadline = report.time + timedelta(seconds=policy.heartbeat_timeout)
    if job.state is JobState.QUEUED:
        builder.emit(EventType.RUNNING, state=JobState.RUNNING, heartbeat_deadline=deadline)
    else:
        builder.job = replace(builder.job, heartbeat_deadline=deadline)
    if isinstance(report, ProgressReport):
        progress: dict[str, Any] = {"epoch": report.epoch, "epochs": report.epochs, "metrics": report.metrics}
        if report.resumed_from_epoch is not None:
            progress["resumed_from_epoch"] = report.resumed_from_epoch
        if report.epoch_seconds is not None:
            progress["epoch_seconds"] = report.epoch_seconds
        builder.emit(EventType.PROGRESS, progress)
    elif isinstance(report, LogReport):
        log: dict[str, Any] = {"level": report.level, "message": report.message}
        if report.lines is not None:  # a batch of the trainer's output
            log["lines"] = [line.model_dump(mode="json") for line in report.lines]
        builder.emit(EventType.LOG, log)
    elif isinstance(report, ArtifactReport):
        builder.emit(
            EventType.ARTIFACT,
            {
                "name": report.name,
                "size": report.size,
                "sha256": report.sha256,
                "storage_key": report.storage_key,
            },
        )
    elif isinstance(report, DoneReport):
        _done(builder, report, policy)
    return builder.decision()


def _done(builder: _Builder, report: DoneReport, policy: Policy) -> None:
    if report.status == "succeeded":
        builder.emit(
            EventType.SUCCEEDED,
            {"metrics": report.metrics},
            state=JobState.SUCCEEDED,
            heartbeat_deadline=None,
        )
    elif report.status == "preempted":
        _preempted(builder, report.reason or "preempted", policy)
    elif report.status == "cancelled":
        # The trainer stopped on its own (had the job been cancelled here, the report would be rejected).
        builder.emit(
            EventType.CANCELLED,
            {"reason": report.reason or "cancelled by the trainer"},
            state=JobState.CANCELLED,
            heartbeat_deadline=None,
        )
    else:
        builder.fail_attempt(report.reason or "trainer reported failure", policy, retryable=report.retryable)


def _preempted(builder: _Builder, reason: str, policy: Policy) -> None:
    """The trainer was stopped from outside (an eviction, a spot reclaim) and saved a checkpoint: the
    attempt runs again, unchanged, from it. Past `max_preemptions`, a preemption is a failed attempt."""
    job = builder.job
    if job.preemptions >= job.max_preemptions:
        builder.fail_attempt(f"{reason} (preempted {job.preemptions} times: max_preemptions spent)", policy)
        return
    builder.emit(
        EventType.PREEMPTED,
        {"reason": reason, "preemptions": job.preemptions + 1},
        state=JobState.QUEUED,
        preemptions=job.preemptions + 1,
        heartbeat_deadline=None,
    )
    builder.queue(policy)
