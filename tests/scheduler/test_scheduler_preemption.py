"""A preempted run goes back to the queue at the same attempt and resumes; a stale run's reports are refused;
past `max_preemptions` a preemption is a failed attempt."""

from __future__ import annotations

from dataclasses import replace

from scheduler_factories import POLICY, at, done, heartbeat, progress, submit

from contracts.jobs import EventType, JobState
from services.scheduler.core import Dispatch, Job, Tick, decide


def running(max_preemptions: int | None = None, preemptions: int = 0) -> Job:
    command = submit("j1").model_copy(update={"max_preemptions": max_preemptions})
    job = decide(None, command, POLICY).state
    for run in range(preemptions):
        job = decide(job, heartbeat("j1", time=1).model_copy(update={"run": run or None}), POLICY).state
        job = decide(job, preempted(run=run), POLICY).state
    job = decide(job, heartbeat("j1", time=2).model_copy(update={"run": preemptions or None}), POLICY).state
    assert job is not None
    assert job.state is JobState.RUNNING
    return job


def preempted(run: int = 0, time: float = 3):
    report = done("j1", "preempted", time=time)
    return report.model_copy(update={"reason": "preempted by SIGTERM after epoch 1", "run": run or None})


def test_a_preempted_run_is_queued_again_at_the_same_attempt() -> None:
    decision = decide(running(), preempted(), POLICY)

    assert [event.type for event in decision.events] == [EventType.PREEMPTED, EventType.QUEUED]
    first = decision.events[0]
    assert first.payload == {"reason": "preempted by SIGTERM after epoch 1", "preemptions": 1}
    assert all(event.attempt == 1 for event in decision.events)
    assert all(event.state is JobState.QUEUED for event in decision.events)
    assert decision.effects == (Dispatch(job_id="j1", attempt=1, pool="local", run=1),)
    job = decision.state
    assert job is not None
    assert (job.attempt, job.preemptions, job.heartbeat_deadline, job.retry_at) == (1, 1, None, None)


def test_the_next_run_reports_and_the_preempted_one_is_refused() -> None:
    job = decide(running(), preempted(), POLICY).state

    stale = decide(job, heartbeat("j1", time=4), POLICY)
    assert stale.rejected_reason == "report of run 0 of attempt 1, which was preempted (now run 1)"
    resumed = decide(job, progress("j1", time=5).model_copy(update={"run": 1}), POLICY)
    assert [event.type for event in resumed.events] == [EventType.RUNNING, EventType.PROGRESS]
    assert resumed.events[-1].attempt == 1


def test_past_max_preemptions_a_preemption_is_a_failed_attempt() -> None:
    job = running(max_preemptions=1, preemptions=1)
    assert job.preemptions == 1

    decision = decide(job, preempted(run=1, time=9), POLICY)

    [retrying] = decision.events
    assert retrying.type is EventType.RETRYING
    assert retrying.attempt == 2
    assert "max_preemptions spent" in retrying.payload["reason"]


def test_no_preemptions_allowed_fails_the_attempt_at_the_first() -> None:
    decision = decide(running(max_preemptions=0), preempted(), POLICY)
    assert [event.type for event in decision.events] == [EventType.RETRYING]


def test_a_preempted_job_waits_with_a_fresh_queue_deadline() -> None:
    policy = replace(POLICY, queue_timeout=30)
    command = submit("j1")
    job = decide(None, command, policy).state
    job = decide(job, heartbeat("j1", time=10), policy).state
    job = decide(job, preempted(time=20), policy).state
    assert job is not None
    assert job.queue_deadline == at(50)
    assert decide(job, Tick(job_id="j1", now=at(49)), policy).rejected_reason == "nothing due"
