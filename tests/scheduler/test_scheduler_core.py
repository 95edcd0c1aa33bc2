"""The pure state machine: every legal transition and every rejection, no servers."""

from __future__ import annotations

from dataclasses import replace

import pytest
from scheduler_factories import POLICY, artifact, at, cancel, done, heartbeat, log_line, progress, submit

from contracts.jobs import EventType, JobState
from services.scheduler.core import Decision, Dispatch, Job, Tick, backoff_seconds, decide


def run(*inputs, policy=POLICY) -> tuple[Job | None, list[Decision]]:
    state, decisions = None, []
    for command in inputs:
        decision = decide(state, command, policy)
        decisions.append(decision)
        state = decision.state
    return state, decisions


def types(decision: Decision) -> list[str]:
    return [event.type.value for event in decision.events]


def queued(job_id: str = "j1", **kwargs) -> Job:
    state, _ = run(submit(job_id, **kwargs))
    assert state is not None
    return state


def running(job_id: str = "j1", **kwargs) -> Job:
    decision = decide(queued(job_id, **kwargs), heartbeat(job_id, time=1), POLICY)
    assert decision.state is not None
    return decision.state


def terminal(kind: str) -> Job:
    job = running()
    if kind == "SUCCEEDED":
        command = done("j1", "succeeded", time=2)
    elif kind == "FAILED":
        job = replace(job, max_attempts=1)
        command = done("j1", "failed", time=2)
    else:
        command = cancel("j1", time=2)
    state = decide(job, command, POLICY).state
    assert state is not None
    assert state.state.value == kind
    return state


def rejected(decision: Decision, before: Job | None, reason: str) -> None:
    assert decision.rejected_reason is not None
    assert reason in decision.rejected_reason
    assert decision.state == before
    assert decision.events == ()
    assert decision.effects == ()


# Submit


def test_submit_emits_submitted_and_queued_and_dispatches_attempt_1() -> None:
    command = submit("j1", pool="gpu-a100")
    decision = decide(None, command, POLICY)
    assert decision.applied
    assert types(decision) == ["job.submitted", "job.queued"]
    submitted, queued_event = decision.events
    assert (submitted.state, submitted.version, submitted.attempt) == (JobState.PENDING, 1, 1)
    assert (queued_event.state, queued_event.version) == (JobState.QUEUED, 2)
    assert submitted.payload["pool"] == "gpu-a100"
    assert submitted.payload["max_attempts"] == 3
    assert submitted.payload["spec"]["model"] == "resnet18"
    assert submitted.payload["dataset"]["storage_key"] == "datasets/ds1/data.zip"
    assert queued_event.payload == {"pool": "gpu-a100"}
    assert all(e.time == command.submitted_at and e.trace_id == command.trace_id for e in decision.events)
    assert all(e.project_id == "proj" for e in decision.events)
    assert decision.effects == (Dispatch(job_id="j1", attempt=1, pool="gpu-a100"),)
    job = decision.state
    assert job is not None
    assert (job.state, job.attempt, job.version, job.heartbeat_deadline, job.retry_at) == (
        JobState.QUEUED,
        1,
        2,
        None,
        None,
    )


@pytest.mark.parametrize("state", ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"])
def test_duplicate_submit_is_rejected(state: str) -> None:
    job = {"QUEUED": queued, "RUNNING": running}.get(state, lambda: terminal(state))()
    rejected(decide(job, submit("j1"), POLICY), job, "duplicate submit")


# Unknown job


@pytest.mark.parametrize(
    "command",
    [
        cancel("x"),
        heartbeat("x"),
        progress("x"),
        log_line("x"),
        artifact("x"),
        done("x"),
        Tick(job_id="x", now=at(1)),
    ],
)
def test_any_input_but_submit_for_an_unknown_job_is_rejected(command) -> None:
    rejected(decide(None, command, POLICY), None, "unknown job")


# Reports


@pytest.mark.parametrize(
    ("make", "extra"),
    [
        (heartbeat, []),
        (progress, ["job.progress"]),
        (log_line, ["job.log"]),
        (artifact, ["job.artifact"]),
        (done, ["job.succeeded"]),
    ],
)
def test_first_report_of_the_attempt_moves_queued_to_running(make, extra) -> None:
    decision = decide(queued(), make("j1", time=5), POLICY)
    assert types(decision) == ["job.running", *extra]
    assert decision.events[0].state == JobState.RUNNING
    assert [e.version for e in decision.events] == list(range(3, 3 + len(decision.events)))
    assert all(e.time == at(5) for e in decision.events)


def test_heartbeat_while_running_has_no_event_but_pushes_the_deadline() -> None:
    job = running()
    assert job.heartbeat_deadline == at(61)
    decision = decide(job, heartbeat("j1", time=30), POLICY)
    assert decision.applied
    assert decision.events == ()
    assert decision.state == replace(job, heartbeat_deadline=at(90))


def test_progress_log_artifact_events_carry_their_payloads() -> None:
    job = running()
    p = decide(job, progress("j1", time=2), POLICY)
    assert types(p) == ["job.progress"]
    assert p.events[0].payload == {"epoch": 1, "epochs": 3, "metrics": {"loss": 0.5}}
    assert p.state is not None
    assert p.state.heartbeat_deadline == at(62)
    lg = decide(p.state, log_line("j1", time=3), POLICY)
    assert lg.events[0].payload == {"level": "info", "message": "hello"}
    a = decide(lg.state, artifact("j1", time=4), POLICY)
    assert a.events[0].payload == {
        "name": "best.pt",
        "size": 3,
        "sha256": "0" * 64,
        "storage_key": "jobs/j1/artifacts/best.pt",
    }
    assert [e.version for e in (*p.events, *lg.events, *a.events)] == [4, 5, 6]
    assert all(e.state == JobState.RUNNING for e in (*p.events, *lg.events, *a.events))


def test_a_resumed_attempts_progress_says_where_it_resumed() -> None:
    report = progress("j1", time=2).model_copy(update={"epoch": 3, "epochs": 4, "resumed_from_epoch": 2})
    [event] = decide(running(), report, POLICY).events
    assert event.payload == {"epoch": 3, "epochs": 4, "metrics": {"loss": 0.5}, "resumed_from_epoch": 2}


def test_done_succeeded_finishes_the_job_with_metrics() -> None:
    decision = decide(running(), done("j1", "succeeded", time=9), POLICY)
    assert types(decision) == ["job.succeeded"]
    assert decision.events[0].payload == {"metrics": {"acc": 0.9}}
    assert decision.state is not None
    assert decision.state.state == JobState.SUCCEEDED
    assert decision.state.heartbeat_deadline is None
    assert decision.effects == ()


def test_done_failed_retries_with_backoff() -> None:
    decision = decide(running(), done("j1", "failed", time=9, reason="oom"), POLICY)
    assert types(decision) == ["job.retrying"]
    event = decision.events[0]
    assert (event.state, event.attempt) == (JobState.QUEUED, 2)
    assert event.payload == {"reason": "oom", "retry_at": at(19).isoformat(), "next_attempt": 2}
    job = decision.state
    assert job is not None
    assert (job.state, job.attempt, job.retry_at, job.heartbeat_deadline) == (
        JobState.QUEUED,
        2,
        at(19),
        None,
    )
    assert decision.effects == ()


def test_done_failed_on_the_last_attempt_fails_the_job() -> None:
    job = replace(running(), max_attempts=1)
    decision = decide(job, done("j1", "failed", time=9), POLICY)
    assert types(decision) == ["job.failed"]
    assert decision.events[0].payload == {"reason": "trainer reported failure"}
    assert decision.state is not None
    assert decision.state.state == JobState.FAILED


def test_done_cancelled_from_the_trainer_cancels() -> None:
    decision = decide(running(), done("j1", "cancelled", time=9), POLICY)
    assert types(decision) == ["job.cancelled"]
    assert decision.state is not None
    assert decision.state.state == JobState.CANCELLED


@pytest.mark.parametrize("make", [heartbeat, progress, log_line, artifact, done])
@pytest.mark.parametrize("attempt", [0, 2])
def test_report_for_another_attempt_is_rejected(make, attempt) -> None:
    for job in (queued(), running()):
        rejected(decide(job, make("j1", attempt=attempt), POLICY), job, f"attempt {attempt}")


@pytest.mark.parametrize("make", [heartbeat, progress, log_line, artifact, done])
def test_report_for_an_attempt_still_in_backoff_is_rejected(make) -> None:
    job = decide(running(), done("j1", "failed", time=2), POLICY).state
    rejected(decide(job, make("j1", attempt=2, time=3), POLICY), job, "not dispatched yet")
    rejected(decide(job, make("j1", attempt=1, time=3), POLICY), job, "current attempt is 2")


@pytest.mark.parametrize("kind", ["SUCCEEDED", "FAILED", "CANCELLED"])
@pytest.mark.parametrize("make", [heartbeat, progress, log_line, artifact, done, cancel])
def test_anything_on_a_terminal_job_is_rejected(kind, make) -> None:
    job = terminal(kind)
    rejected(decide(job, make("j1", time=3), POLICY), job, f"job is {kind}")
    rejected(decide(job, Tick(job_id="j1", now=at(10_000)), POLICY), job, f"job is {kind}")


# Cancel


@pytest.mark.parametrize("when", ["QUEUED", "RUNNING", "BACKOFF"])
def test_cancel_from_every_non_terminal_state(when) -> None:
    job = queued() if when == "QUEUED" else running()
    if when == "BACKOFF":
        job = decide(job, done("j1", "failed", time=2), POLICY).state
    assert job is not None
    decision = decide(job, cancel("j1", time=7), POLICY)
    assert types(decision) == ["job.cancelled"]
    event = decision.events[0]
    assert (event.state, event.version, event.time, event.payload) == (
        JobState.CANCELLED,
        job.version + 1,
        at(7),
        {"reason": "user"},
    )
    assert decision.state is not None
    assert (decision.state.heartbeat_deadline, decision.state.retry_at) == (None, None)
    assert decision.effects == ()


def test_cancel_from_another_project_is_rejected() -> None:
    job = running()
    rejected(decide(job, cancel("j1", project_id="other"), POLICY), job, "another project")


# Ticks


def test_tick_before_anything_is_due_is_rejected() -> None:
    job = running()
    rejected(decide(job, Tick(job_id="j1", now=at(60)), POLICY), job, "nothing due")
    rejected(decide(queued(), Tick(job_id="j1", now=at(10_000)), POLICY), queued(), "nothing due")


def test_tick_at_retry_time_queues_and_dispatches_the_next_attempt() -> None:
    job = decide(running(), done("j1", "failed", time=2), POLICY).state
    assert job is not None
    rejected(decide(job, Tick(job_id="j1", now=at(11)), POLICY), job, "nothing due")
    decision = decide(job, Tick(job_id="j1", now=at(12)), POLICY)
    assert types(decision) == ["job.queued"]
    assert (decision.events[0].attempt, decision.events[0].time) == (2, at(12))
    assert decision.effects == (Dispatch(job_id="j1", attempt=2, pool="local"),)
    assert decision.state is not None
    assert decision.state.retry_at is None
    # The new attempt's first report moves it to RUNNING.
    assert types(decide(decision.state, heartbeat("j1", attempt=2, time=13), POLICY)) == ["job.running"]


def test_heartbeat_timeout_retries_then_fails_after_max_attempts() -> None:
    state, decisions = run(
        submit("j1", max_attempts=3),
        heartbeat("j1", attempt=1, time=1),
        Tick(job_id="j1", now=at(61)),  # deadline 1 + 60 passed: retry after 10 s
        Tick(job_id="j1", now=at(71)),  # queued again, attempt 2
        heartbeat("j1", attempt=2, time=72),
        Tick(job_id="j1", now=at(132)),  # retry after 20 s
        Tick(job_id="j1", now=at(152)),
        progress("j1", attempt=3, time=153),
        Tick(job_id="j1", now=at(213)),  # attempt 3 was the last
    )
    assert [types(d) for d in decisions] == [
        ["job.submitted", "job.queued"],
        ["job.running"],
        ["job.retrying"],
        ["job.queued"],
        ["job.running"],
        ["job.retrying"],
        ["job.queued"],
        ["job.running", "job.progress"],
        ["job.failed"],
    ]
    assert decisions[2].events[0].payload == {
        "reason": "no heartbeat for 60 s",
        "retry_at": at(71).isoformat(),
        "next_attempt": 2,
    }
    assert decisions[5].events[0].payload["retry_at"] == at(152).isoformat()
    assert decisions[8].events[0].payload == {"reason": "no heartbeat for 60 s"}
    assert state is not None
    assert (state.state, state.attempt, state.version) == (JobState.FAILED, 3, 11)
    versions = [e.version for d in decisions for e in d.events]
    assert versions == list(range(1, 12))
    assert [e.attempt for e in decisions[6].events] == [3]
    assert [eff.attempt for d in decisions for eff in d.effects] == [1, 2, 3]


def test_decide_is_deterministic() -> None:
    inputs = (submit("j1"), heartbeat("j1"), progress("j1", time=2), done("j1", "failed", time=3))
    assert run(*inputs) == run(*inputs)


# Backoff


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 320), (7, 600), (50, 600), (10_000, 600)],
)
def test_backoff_doubles_per_attempt_up_to_the_cap(attempt, expected) -> None:
    assert backoff_seconds(attempt, 10, 600) == expected


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_seconds(0, 10, 600)


def test_event_types_cover_the_lifecycle() -> None:
    assert {e.value for e in EventType} >= {"job.submitted", "job.queued", "job.retrying", "job.failed"}
