"""The scheduler's Prometheus metrics (telemetry/metrics.py), counted from what a batch decided, after its
transaction committed: a batch that fails counts nothing, and its redelivery counts once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from contracts.jobs import EventType, JobState
from contracts.reports import DoneReport
from services.scheduler.core import Decision, Input, Job, Tick
from telemetry import metrics


def count_input(kind: str, outcome: str) -> None:
    """kind: an input's recorded kind (`submit`, `report.done`, …; `report.` left out); outcome: applied,
    rejected, redelivered, refused or deferred."""
    metrics.SCHEDULER_INPUTS.labels(
        kind=kind.removeprefix("refused.").removeprefix("report."), outcome=outcome
    ).inc()


def record_decisions(decided: Sequence[tuple[Input, Decision]], before: Mapping[str, Job]) -> None:
    """Count the transitions of decided inputs, in order (`before`: the jobs as the batch found them)."""
    states: dict[str, Job | None] = dict(before)
    for command, decision in decided:
        job = decision.state
        previous = states.get(command.job_id)
        states[command.job_id] = job
        if not decision.applied or job is None:
            continue
        _record_events(command, decision, previous, job)


def _record_events(command: Input, decision: Decision, previous: Job | None, job: Job) -> None:
    labels = {"framework": job.spec.framework, "pool": job.pool}
    state = previous.state if previous is not None else JobState.PENDING
    since = previous.state_since if previous is not None else None
    for event in decision.events:
        if event.state != state:
            if since is not None and state == JobState.QUEUED and event.state == JobState.RUNNING:
                metrics.JOB_QUEUE_SECONDS.labels(**labels).observe(_seconds(event.time, since))
            if since is not None and state == JobState.RUNNING:
                metrics.JOB_RUN_SECONDS.labels(**labels).observe(_seconds(event.time, since))
            state, since = event.state, event.time
        if event.type.terminal:
            metrics.JOBS_FINISHED.labels(state=event.state.value.lower(), **labels).inc()
        if event.type == EventType.RETRYING:
            metrics.JOB_RETRIES.labels(reason=_retry_reason(command)).inc()
        # A tick ends a running attempt only for its missing heartbeat (a queued one, for its queue timeout).
        running = previous is not None and previous.state is JobState.RUNNING
        if isinstance(command, Tick) and running and event.type in (EventType.RETRYING, EventType.FAILED):
            metrics.HEARTBEAT_TIMEOUTS.inc()
        if event.type == EventType.PREEMPTED:
            metrics.JOB_PREEMPTIONS.labels(pool=job.pool).inc()
        epoch_seconds = event.payload.get("epoch_seconds") if event.type == EventType.PROGRESS else None
        if isinstance(epoch_seconds, int | float):
            metrics.EPOCH_SECONDS.labels(framework=job.spec.framework).observe(epoch_seconds)


def _retry_reason(command: Input) -> str:
    if isinstance(command, Tick):
        return "heartbeat_timeout"
    if isinstance(command, DoneReport):
        return "attempt_failed"
    return "other"


def _seconds(later: datetime, earlier: datetime) -> float:
    return max(0.0, (later - earlier).total_seconds())
