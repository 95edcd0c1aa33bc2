"""A failure the trainer says will recur (`retryable: false`) fails the job at once, attempts left or not;
every other failure is retried as before. The pure state machine, no servers."""

from __future__ import annotations

from dataclasses import replace

import pytest
from scheduler_factories import POLICY, at, heartbeat, submit

from contracts.jobs import EventType, JobState
from contracts.reports import DoneReport
from services.scheduler.core import Job, Tick, decide

REASON = "RuntimeError: Unknown model (no_such_model); use a model name timm knows (timm.list_models())"


def running(attempt: int = 1, max_attempts: int = 3) -> Job:
    job = decide(None, submit("j1", max_attempts=max_attempts), POLICY).state
    assert job is not None
    job = replace(job, attempt=attempt)
    job = decide(job, heartbeat("j1", attempt=attempt, time=1), POLICY).state
    assert job is not None
    assert job.state is JobState.RUNNING
    return job


def failed(attempt: int = 1, *, retryable: bool | None, reason: str | None = REASON) -> DoneReport:
    extra = {} if retryable is None else {"retryable": retryable}
    return DoneReport(job_id="j1", attempt=attempt, time=at(9), status="failed", reason=reason, **extra)


def test_a_failure_that_will_recur_fails_the_job_at_attempt_1_with_attempts_left() -> None:
    decision = decide(running(max_attempts=3), failed(retryable=False), POLICY)
    [event] = decision.events
    assert (event.type, event.state, event.attempt) == (EventType.FAILED, JobState.FAILED, 1)
    assert event.payload == {"reason": REASON, "retryable": False}
    assert event.time == at(9)
    job = decision.state
    assert job is not None
    assert (job.state, job.attempt, job.retry_at, job.heartbeat_deadline) == (JobState.FAILED, 1, None, None)
    assert decision.effects == ()  # nothing dispatched, no backoff timer


def test_a_failure_that_will_recur_on_a_later_attempt_fails_there() -> None:
    decision = decide(running(attempt=2, max_attempts=5), failed(2, retryable=False), POLICY)
    assert [(e.type, e.attempt) for e in decision.events] == [(EventType.FAILED, 2)]
    assert decision.events[0].payload["retryable"] is False


def test_a_failure_that_will_recur_without_a_reason_still_says_so() -> None:
    decision = decide(running(), failed(retryable=False, reason=None), POLICY)
    assert decision.events[0].payload == {"reason": "trainer reported failure", "retryable": False}


@pytest.mark.parametrize("retryable", [True, None], ids=["retryable", "unsaid"])
def test_any_other_failure_is_retried_with_backoff(retryable: bool | None) -> None:
    decision = decide(running(max_attempts=3), failed(retryable=retryable, reason="trainer crashed"), POLICY)
    [event] = decision.events
    assert (event.type, event.state, event.attempt) == (EventType.RETRYING, JobState.QUEUED, 2)
    assert event.payload == {"reason": "trainer crashed", "retry_at": at(19).isoformat(), "next_attempt": 2}
    job = decision.state
    assert job is not None
    # The retry goes out at its time, as before.
    again = decide(job, Tick(job_id="j1", now=at(19)), POLICY)
    assert [e.type for e in again.events] == [EventType.QUEUED]
    assert [effect.attempt for effect in again.effects] == [2]


def test_a_retryable_failure_on_the_last_attempt_fails_the_job_as_before() -> None:
    decision = decide(running(attempt=3, max_attempts=3), failed(3, retryable=True, reason="boom"), POLICY)
    [event] = decision.events
    assert (event.type, event.attempt) == (EventType.FAILED, 3)
    assert event.payload == {"reason": "boom"}


def test_retryable_does_not_matter_to_a_success() -> None:
    report = DoneReport(job_id="j1", attempt=1, time=at(9), status="succeeded", retryable=False)
    decision = decide(running(), report, POLICY)
    assert [e.type for e in decision.events] == [EventType.SUCCEEDED]


def test_a_lost_heartbeat_is_still_retried() -> None:
    job = running(max_attempts=3)
    assert job.heartbeat_deadline is not None
    decision = decide(job, Tick(job_id="j1", now=job.heartbeat_deadline), POLICY)
    assert [(e.type, e.attempt) for e in decision.events] == [(EventType.RETRYING, 2)]
