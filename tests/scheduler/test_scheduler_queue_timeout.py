"""A queued attempt no runner takes within its queue timeout fails the job, at once and for good."""

from __future__ import annotations

from dataclasses import replace

from scheduler_factories import POLICY, at, done, heartbeat, submit

from contracts.jobs import EventType, JobState
from services.scheduler.core import Job, Policy, Tick, decide

WAITING = replace(POLICY, queue_timeout=30)


def queued(policy: Policy = WAITING, **overrides: object) -> Job:
    command = submit("j1").model_copy(update=overrides)
    state = decide(None, command, policy).state
    assert state is not None
    return state


def test_a_queued_job_gets_the_platform_deadline_or_its_own() -> None:
    assert queued().queue_deadline == at(30)
    assert queued(queue_timeout=5).queue_deadline == at(5)
    assert queued(policy=POLICY).queue_deadline is None  # no timeout anywhere: it may wait for ever


def test_the_job_s_own_timeout_is_in_its_submitted_event() -> None:
    decision = decide(None, submit("j1").model_copy(update={"queue_timeout": 5}), WAITING)
    assert decision.events[0].payload["queue_timeout"] == 5
    assert "queue_timeout" not in decide(None, submit("j2"), WAITING).events[0].payload


def test_past_the_deadline_the_job_fails_without_a_retry() -> None:
    job = queued()
    assert decide(job, Tick(job_id="j1", now=at(29)), WAITING).rejected_reason == "nothing due"
    decision = decide(job, Tick(job_id="j1", now=at(30)), WAITING)
    [failed] = decision.events
    assert failed.type is EventType.FAILED
    assert failed.attempt == 1  # attempts were left: waiting longer would not help
    assert failed.payload == {"reason": "no runner took it within 30 s (queue timeout)", "retryable": False}
    assert decision.state is not None
    assert decision.state.state is JobState.FAILED
    assert decision.state.queue_deadline is None


def test_a_runner_taking_the_job_ends_its_wait() -> None:
    running = decide(queued(), heartbeat("j1", time=10), WAITING).state
    assert running is not None
    assert running.queue_deadline is None
    # Past the old deadline only the heartbeat deadline counts.
    assert decide(running, Tick(job_id="j1", now=at(31)), WAITING).rejected_reason == "nothing due"


def test_a_retry_waits_afresh_from_its_own_queueing() -> None:
    running = decide(queued(), heartbeat("j1", time=10), WAITING).state
    retrying = decide(running, done("j1", "failed", time=20), WAITING).state
    assert retrying is not None
    assert retrying.retry_at is not None
    assert retrying.queue_deadline is None  # the backoff is not a wait for a runner
    requeued = decide(retrying, Tick(job_id="j1", now=retrying.retry_at), WAITING).state
    assert requeued is not None
    assert requeued.attempt == 2
    assert requeued.queue_deadline == retrying.retry_at + (at(30) - at(0))
