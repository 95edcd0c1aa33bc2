"""The scheduler against a real nats-server and a real Postgres."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from nats.js import JetStreamContext
from scheduler_factories import cancel, done, heartbeat, progress, submit
from scheduler_helpers import dispatched, new_pool, publish, wait_events
from sqlalchemy import text

from contracts import subjects
from contracts.jobs import JobState
from services.common import tokens
from services.scheduler import repository
from services.scheduler.app import SchedulerApp
from services.scheduler.replay import diff, load_inputs, replay
from services.scheduler.service import ALREADY_APPLIED, Delivery


def now(report):
    """The ticker compares deadlines with the wall clock, so reports must carry the current time."""
    return report.model_copy(update={"time": datetime.now(UTC)})


def types(events) -> list[str]:
    return [e.type.value for e in events]


async def test_submit_yields_submitted_queued_and_one_verifiable_dispatch(
    start_scheduler, js: JetStreamContext, callback_keys
) -> None:
    await start_scheduler()
    pool = new_pool()
    command = submit(pool=pool)
    await publish(js, subjects.SUBMIT_JOB, command, msg_id=command.job_id)

    events = await wait_events(js, command.job_id, 2)
    assert types(events) == ["job.submitted", "job.queued"]
    assert [e.version for e in events] == [1, 2]
    assert events[1].state == JobState.QUEUED
    assert all(e.time == command.submitted_at and e.trace_id == command.trace_id for e in events)

    [dispatch] = await dispatched(js, pool, 1)
    assert (dispatch.job_id, dispatch.attempt, dispatch.pool) == (command.job_id, 1, pool)
    assert dispatch.spec == command.spec
    assert dispatch.callback_url.endswith("/v1/callbacks")
    assert "/v1/storage/datasets/ds1/data.zip?method=GET" in dispatch.dataset_url
    assert dispatch.traceparent is not None
    assert dispatch.traceparent.startswith(f"00-{command.trace_id}-")
    claims = tokens.verify(callback_keys[1].read_text(), dispatch.callback_token)
    assert (claims.job_id, claims.attempt) == (command.job_id, 1)
    assert dispatch.weights_url is None  # the spec names no starting weights


@pytest.mark.parametrize(
    ("weights", "key"),
    [
        ("ab" * 16, f"models/{'ab' * 16}/weights.pt"),
        (f"job:{'cd' * 16}/best.pt", f"jobs/{'cd' * 16}/artifacts/best.pt"),
    ],
)
async def test_a_dispatch_signs_the_starting_weights_the_spec_names(
    start_scheduler, js: JetStreamContext, weights: str, key: str
) -> None:
    await start_scheduler()
    pool = new_pool()
    command = submit(pool=pool)
    command = command.model_copy(update={"spec": command.spec.model_copy(update={"weights": weights})})
    await publish(js, subjects.SUBMIT_JOB, command, msg_id=command.job_id)
    [dispatch] = await dispatched(js, pool, 1)
    assert dispatch.spec.weights == weights  # type: ignore[union-attr]
    assert dispatch.weights_url is not None
    assert f"/v1/storage/{key}?method=GET" in dispatch.weights_url


async def test_crash_between_publish_and_commit_duplicates_nothing_and_loses_nothing(
    start_scheduler, js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = repository.write_batch
    crashes = 0

    async def crash_once(*args, **kwargs):
        nonlocal crashes
        if crashes == 0:
            crashes += 1
            raise ConnectionError("simulated crash after publish, before commit")
        return await real_write(*args, **kwargs)

    monkeypatch.setattr(repository, "write_batch", crash_once)
    await start_scheduler()
    pool = new_pool()
    command = submit(pool=pool)
    await publish(js, subjects.SUBMIT_JOB, command)

    events = await wait_events(js, command.job_id, 2)
    await asyncio.sleep(0.5)  # give a duplicate the time to show up
    events = await wait_events(js, command.job_id, 2)
    assert crashes == 1
    assert types(events) == ["job.submitted", "job.queued"]
    assert len(await dispatched(js, pool, 1)) == 1


async def test_redelivered_input_after_commit_is_skipped(start_scheduler, js: JetStreamContext) -> None:
    app: SchedulerApp = await start_scheduler()
    pool = new_pool()
    command = submit(pool=pool)
    await publish(js, subjects.SUBMIT_JOB, command)
    await wait_events(js, command.job_id, 2)
    report = now(progress(command.job_id))
    await publish(js, subjects.report_subject(command.job_id, "progress"), report)
    events = await wait_events(js, command.job_id, 4)
    assert types(events) == ["job.submitted", "job.queued", "job.running", "job.progress"]

    # The same message again (its ack was lost): recognised by its source, not applied twice. Its events
    # are sent right after its input commits, so the row is there by now; the loop is a safety margin.
    source = None
    for _ in range(100):
        async with app.engine.connect() as conn:
            source = (
                await conn.execute(
                    text(
                        "SELECT source FROM scheduler_inputs WHERE job_id = :j AND kind = 'report.progress'"
                    ),
                    {"j": command.job_id},
                )
            ).scalar_one_or_none()
        if source is not None:
            break
        await asyncio.sleep(0.05)
    assert source is not None, "the progress report's input was never recorded"
    assert app.service is not None
    decision = await app.service.apply(report, deliveries=2, source=source)
    assert not decision.applied
    # A second submit of the same job is rejected (and recorded), never applied.
    decision = await app.service.apply(command, deliveries=1, source="VTP_COMMANDS:999999999")
    assert decision.rejected_reason == "duplicate submit"
    await asyncio.sleep(0.3)
    assert len(await wait_events(js, command.job_id, 4)) == 4
    assert len(await dispatched(js, pool, 1)) == 1


@pytest.mark.parametrize("from_state", ["QUEUED", "RUNNING"])
async def test_cancel(start_scheduler, js: JetStreamContext, from_state: str) -> None:
    await start_scheduler()
    command = submit(pool=new_pool())
    job_id = command.job_id
    await publish(js, subjects.SUBMIT_JOB, command)
    expected = ["job.submitted", "job.queued"]
    await wait_events(js, job_id, 2)
    if from_state == "RUNNING":
        await publish(js, subjects.report_subject(job_id, "heartbeat"), now(heartbeat(job_id)))
        expected.append("job.running")
        await wait_events(js, job_id, 3)
    await publish(js, subjects.CANCEL_JOB, cancel(job_id, time=2))
    events = await wait_events(js, job_id, len(expected) + 1)
    assert types(events) == [*expected, "job.cancelled"]
    assert events[-1].state == JobState.CANCELLED
    assert events[-1].payload == {"reason": "user"}

    # The trainer's late done(cancelled) is recorded and rejected: no event.
    await publish(js, subjects.report_subject(job_id, "done"), done(job_id, "cancelled", time=3))
    await asyncio.sleep(0.3)
    assert len(await wait_events(js, job_id, len(expected) + 1)) == len(expected) + 1


async def test_heartbeat_timeout_retries_and_fails_with_reason_then_replays(
    start_scheduler, js: JetStreamContext, scheduler_settings
) -> None:
    await start_scheduler(heartbeat_timeout=0.3)
    pool = new_pool()
    command = submit(pool=pool, max_attempts=2)
    job_id = command.job_id
    await publish(js, subjects.SUBMIT_JOB, command)
    await wait_events(js, job_id, 2)
    await publish(js, subjects.report_subject(job_id, "heartbeat"), now(heartbeat(job_id, attempt=1)))
    await wait_events(js, job_id, 5)  # running, retrying, queued (attempt 2)
    await publish(js, subjects.report_subject(job_id, "progress"), now(progress(job_id, attempt=2)))
    events = await wait_events(js, job_id, 8)
    assert types(events) == [
        "job.submitted",
        "job.queued",
        "job.running",
        "job.retrying",
        "job.queued",
        "job.running",
        "job.progress",
        "job.failed",
    ]
    assert events[3].payload["reason"] == "no heartbeat for 0.3 s"
    assert events[3].payload["next_attempt"] == 2
    assert events[4].attempt == 2
    assert events[-1].payload == {"reason": "no heartbeat for 0.3 s"}
    first, retry = await dispatched(js, pool, 2)
    assert [first.attempt, retry.attempt] == [1, 2]
    # The retry may resume from the job's last checkpoint; the first attempt has none to resume.
    assert first.resume_url is None
    assert retry.resume_url is not None
    assert f"/v1/storage/jobs/{job_id}/artifacts/last.pt?method=GET" in retry.resume_url

    # Deterministic replay: the recorded inputs give back exactly the stored events. (Events are published
    # before their input commits: the last input may take a moment to be recorded.)
    recorded = await load_inputs(scheduler_settings, job_id)
    for _ in range(100):
        if diff(replay(recorded).events, events) == []:
            break
        await asyncio.sleep(0.05)
        recorded = await load_inputs(scheduler_settings, job_id)
    assert [r.kind for r in recorded][:2] == ["submit", "report.heartbeat"]
    result = replay(recorded)
    assert result.mismatches == []
    assert diff(result.events, events) == []
    # A history missing an input does not: the diff shows it.
    assert diff(replay(recorded[:-1]).events, events) != []

    # The command-line tool says the same.
    env = {
        **os.environ,
        "NATS_URL": scheduler_settings.nats_url,
        "DATABASE_URL": scheduler_settings.database_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.scheduler.replay", job_id, env=env, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    assert process.returncode == 0, stdout
    assert b"8 events: replay matches the stored history" in stdout


async def test_report_that_overtakes_its_submit_is_deferred_then_recorded_as_rejected(
    start_scheduler, js: JetStreamContext
) -> None:
    app: SchedulerApp = await start_scheduler()
    job_id = uuid4().hex
    await publish(js, subjects.report_subject(job_id, "heartbeat"), now(heartbeat(job_id)))
    rows: list = []
    async with asyncio.timeout(10):
        while not rows:
            await asyncio.sleep(0.2)
            async with app.engine.connect() as conn:
                rows = list(
                    await conn.execute(
                        text("SELECT outcome, reason FROM scheduler_inputs WHERE job_id = :j"), {"j": job_id}
                    )
                )
    assert [tuple(r) for r in rows] == [("rejected", "unknown job")]


async def test_inputs_for_one_job_in_one_batch_apply_in_order(start_scheduler, js: JetStreamContext) -> None:
    app: SchedulerApp = await start_scheduler()
    first, second = submit(pool=new_pool()), submit(pool=new_pool())
    assert app.service is not None
    outcomes = await app.service.apply_batch(
        [
            Delivery(first, source="test:1"),
            Delivery(second, source="test:2"),
            Delivery(cancel(first.job_id), source="test:3"),
            Delivery(first, source="test:4"),
        ]
    )
    assert [o.decision.rejected_reason for o in outcomes if o.decision] == [
        None,
        None,
        None,
        "duplicate submit",
    ]
    assert types(await wait_events(js, first.job_id, 3)) == ["job.submitted", "job.queued", "job.cancelled"]
    assert types(await wait_events(js, second.job_id, 2)) == ["job.submitted", "job.queued"]
    # Applying the same batch again (a redelivery after commit) changes nothing.
    again = await app.service.apply_batch([Delivery(cancel(first.job_id), source="test:3")])
    assert again[0].decision is not None
    assert again[0].decision.rejected_reason == ALREADY_APPLIED


async def test_unparseable_message_is_terminated(start_scheduler, js: JetStreamContext, nc) -> None:
    await start_scheduler()
    await js.publish(subjects.SUBMIT_JOB, b"{not json")
    await asyncio.sleep(0.5)
    info = await js.consumer_info(subjects.COMMANDS_STREAM, subjects.SCHEDULER_COMMANDS_CONSUMER)
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


async def test_main_runs_until_sigterm_and_stops_cleanly(scheduler_settings, js: JetStreamContext) -> None:
    env = {
        **os.environ,
        "NATS_URL": scheduler_settings.nats_url,
        "DATABASE_URL": scheduler_settings.database_url,
        "VTP_CALLBACK_PRIVATE_KEY_FILE": str(scheduler_settings.callback_private_key_file),
        "VTP_DATA_DIR": str(scheduler_settings.data_dir),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.scheduler.app", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        command = submit(pool=new_pool())
        await publish(js, subjects.SUBMIT_JOB, command)
        assert types(await wait_events(js, command.job_id, 2)) == ["job.submitted", "job.queued"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
    assert process.returncode == 0, stderr
    assert b'"message": "scheduler stopped"' in stderr
    for stream, durable in (
        (subjects.COMMANDS_STREAM, subjects.SCHEDULER_COMMANDS_CONSUMER),
        (subjects.REPORTS_STREAM, subjects.SCHEDULER_REPORTS_CONSUMER),
    ):
        await js.delete_consumer(stream, durable)
