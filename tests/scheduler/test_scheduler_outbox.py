"""Exactly-once that survives a failed commit: the stream holds the committed transitions, nothing else.

Against the session's real nats-server and Postgres: an input the database cannot store, a commit that
fails, a send that fails after the commit, and a relay that sends again what a crash left in the outbox.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from nats.js import JetStreamContext
from scheduler_factories import heartbeat, log_line, progress, submit
from scheduler_helpers import new_pool, wait_events
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from contracts import subjects
from contracts.reports import LogReport
from services.scheduler import repository
from services.scheduler.app import SchedulerApp
from services.scheduler.replay import diff, load_inputs, replay, stored_events
from services.scheduler.service import Delivery


def now(report):
    """The ticker compares deadlines with the wall clock, so reports must carry the current time."""
    return report.model_copy(update={"time": datetime.now(UTC)})


def poison_log(job_id: str) -> LogReport:
    """A log report holding a NUL, which Postgres text cannot store (built past validation, as a message
    from an older or buggy ingress would arrive)."""
    good = now(log_line(job_id))
    return LogReport.model_construct(**{**dict(good), "message": "before\x00after"})


async def running_job(app: SchedulerApp, js: JetStreamContext) -> str:
    assert app.service is not None
    command = submit(pool=new_pool())
    await app.service.apply(command, source=f"test:{command.job_id}:submit")
    await app.service.apply(now(heartbeat(command.job_id)), source=f"test:{command.job_id}:hb")
    await wait_events(js, command.job_id, 3)
    return command.job_id


async def inputs_of(app: SchedulerApp, job_id: str) -> list[tuple[str, str, str | None]]:
    assert app.engine is not None
    async with app.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT kind, outcome, reason FROM scheduler_inputs WHERE job_id = :j ORDER BY id"),
            {"j": job_id},
        )
        return [tuple(row) for row in rows]


async def outbox_size(app: SchedulerApp, job_id: str) -> int:
    assert app.engine is not None
    async with app.engine.connect() as conn:
        query = text("SELECT count(*) FROM scheduler_outbox WHERE job_id = :j")
        return (await conn.execute(query, {"j": job_id})).scalar_one()


async def outbox_emptied(app: SchedulerApp, job_id: str) -> int:
    """Rows sent are deleted by the next transaction or the ticker's pass (every 0.1 s here)."""
    async with asyncio.timeout(5):
        while size := await outbox_size(app, job_id):  # noqa: ASYNC110 - polling a table
            await asyncio.sleep(0.05)
    return size


async def settled_events(js: JetStreamContext, job_id: str, count: int):
    events = await wait_events(js, job_id, count)
    await asyncio.sleep(0.2)  # anything more would be a phantom
    assert len(await stored_events(js, job_id)) == count
    return events


async def test_an_unstorable_input_in_a_batch_is_refused_and_the_others_apply(
    start_scheduler, js: JetStreamContext
) -> None:
    app: SchedulerApp = await start_scheduler()
    assert app.service is not None
    job_id = await running_job(app, js)

    outcomes = await app.service.apply_batch(
        [
            Delivery(now(progress(job_id)), source=f"test:{job_id}:1"),
            Delivery(poison_log(job_id), source=f"test:{job_id}:2"),
            Delivery(now(log_line(job_id)), source=f"test:{job_id}:3"),
        ]
    )

    assert [o.decision is not None and o.decision.applied for o in outcomes] == [True, False, True]
    assert outcomes[1].decision is not None
    assert (outcomes[1].decision.rejected_reason or "").startswith("input cannot be stored")
    events = await settled_events(js, job_id, 5)
    assert [e.type.value for e in events][3:] == ["job.progress", "job.log"]
    assert [e.version for e in events] == [1, 2, 3, 4, 5]  # no version taken by the refused input
    assert all("\x00" not in e.model_dump_json() for e in events)
    kinds = await inputs_of(app, job_id)
    assert [(kind, outcome) for kind, outcome, _ in kinds][-3:] == [
        ("report.progress", "applied"),
        ("report.log", "refused"),
        ("report.log", "applied"),
    ]
    # Replay lists the refused input, feeds it to nothing, and reproduces the stored history exactly.
    replayed = replay(await load_inputs(app.settings, job_id))
    assert replayed.mismatches == []
    assert len(replayed.refused) == 1
    assert "cannot be stored" in replayed.refused[0]
    assert diff(replayed.events, events) == []
    # The refused input is recorded by its source: its redelivery is not refused again, just skipped.
    [again] = await app.service.apply_batch([Delivery(poison_log(job_id), source=f"test:{job_id}:2")])
    assert again.decision is not None
    assert not again.decision.applied
    assert len(await inputs_of(app, job_id)) == len(kinds)


async def test_a_poison_report_over_nats_is_refused_and_the_next_real_event_is_kept(
    start_scheduler, js: JetStreamContext
) -> None:
    """What was seen: a NUL in a log line published its event, the commit failed, and the next real event
    (epoch 3's progress) was dropped as a duplicate of the phantom's version."""
    app: SchedulerApp = await start_scheduler()
    job_id = await running_job(app, js)
    raw = poison_log(job_id)
    body = raw.model_dump_json().encode()
    assert b"\\u0000" in body
    await js.publish(subjects.report_subject(job_id, "log"), body)
    await js.publish(
        subjects.report_subject(job_id, "progress"), now(progress(job_id)).model_dump_json().encode()
    )

    events = await settled_events(js, job_id, 4)
    assert events[3].type.value == "job.progress"
    assert events[3].version == 4
    rows: list = []
    async with asyncio.timeout(10):
        while not any(outcome == "refused" for _, outcome, _ in rows):
            rows = await inputs_of(app, job_id)
            await asyncio.sleep(0.05)
    info = await js.consumer_info(subjects.REPORTS_STREAM, subjects.SCHEDULER_REPORTS_CONSUMER)
    assert (info.num_ack_pending, info.num_pending) == (0, 0)  # nothing comes again


async def test_a_failed_commit_sends_nothing_and_its_retry_sends_once(
    start_scheduler, js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    app: SchedulerApp = await start_scheduler()
    assert app.service is not None
    job_id = await running_job(app, js)
    write_batch = repository.write_batch
    calls = 0

    async def fails_once(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OperationalError("INSERT", {}, ConnectionResetError("connection lost"))
        return await write_batch(*args, **kwargs)

    monkeypatch.setattr(repository, "write_batch", fails_once)
    report = now(progress(job_id))
    with pytest.raises(OperationalError):
        await app.service.apply_batch([Delivery(report, source=f"test:{job_id}:p")])
    await asyncio.sleep(0.2)
    assert len(await stored_events(js, job_id)) == 3  # the rolled-back decision sent nothing

    await app.service.apply_batch([Delivery(report, deliveries=2, source=f"test:{job_id}:p")])
    events = await settled_events(js, job_id, 4)
    assert (events[3].type.value, events[3].version) == ("job.progress", 4)


async def test_a_send_that_fails_after_the_commit_is_relayed_once(
    start_scheduler, js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    app: SchedulerApp = await start_scheduler()
    assert app.service is not None
    job_id = await running_job(app, js)
    publisher = app.service.relay._publisher
    send = publisher.send

    async def nats_down(messages):
        raise TimeoutError("no PubAck")

    monkeypatch.setattr(publisher, "send", nats_down)
    [outcome] = await app.service.apply_batch([Delivery(now(progress(job_id)), source=f"test:{job_id}:p")])
    assert outcome.decision is not None
    assert outcome.decision.applied  # committed: the input is acked, its event is owed
    assert await outbox_size(app, job_id) == 1
    assert len(await stored_events(js, job_id)) == 3

    # The job's next input sends what the job still owes first, then its own, in version order.
    monkeypatch.setattr(publisher, "send", send)
    await app.service.apply_batch([Delivery(now(log_line(job_id)), source=f"test:{job_id}:l")])
    events = await settled_events(js, job_id, 5)
    assert [(e.type.value, e.version) for e in events[3:]] == [("job.progress", 4), ("job.log", 5)]
    assert await outbox_emptied(app, job_id) == 0


async def insert_leftover(app: SchedulerApp, job_id: str, event, written: str = "now()") -> None:
    """An outbox row as a crash after the PubAck and before the delete leaves it."""
    assert app.engine is not None
    async with app.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO scheduler_outbox"
                " (job_id, stream, subject, msg_id, headers, payload, created_at)"
                f" VALUES (:j, :s, :subj, :m, CAST(:h AS jsonb), :p, {written})"
            ),
            {
                "j": job_id,
                "s": subjects.EVENTS_STREAM,
                "subj": subjects.event_subject(job_id, event.type),
                "m": f"{job_id}:{event.version}",
                "h": f'{{"Nats-Msg-Id": "{job_id}:{event.version}"}}',
                "p": event.model_dump_json().encode(),
            },
        )


async def test_leftovers_of_a_crash_are_relayed_and_copies_are_dropped(
    start_scheduler, js: JetStreamContext
) -> None:
    app: SchedulerApp = await start_scheduler()
    assert app.service is not None
    job_id = await running_job(app, js)
    stored = await stored_events(js, job_id)
    await insert_leftover(app, job_id, stored[2])

    assert await app.service.relay.relay_leftovers(older_than=0) == 1
    assert await outbox_size(app, job_id) == 0
    await asyncio.sleep(0.2)
    assert len(await stored_events(js, job_id)) == 3  # the copy was dropped by its Nats-Msg-Id


async def test_an_old_leftover_event_already_in_the_stream_is_not_sent_again(
    start_scheduler, js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past JetStream's duplicate window the message id no longer protects: the relay asks the stream."""
    app: SchedulerApp = await start_scheduler()
    assert app.service is not None
    job_id = await running_job(app, js)
    stored = await stored_events(js, job_id)
    await insert_leftover(app, job_id, stored[1], written="now() - interval '20 minutes'")
    publisher = app.service.relay._publisher
    sent: list[str] = []
    send = publisher.send

    async def recording(messages):
        sent.extend(m.msg_id for m in messages)
        await send(messages)

    monkeypatch.setattr(publisher, "send", recording)
    assert await app.service.relay.relay_leftovers() == 0
    assert f"{job_id}:2" not in sent
    assert await outbox_size(app, job_id) == 0


async def test_one_write_keeps_the_order_of_many_inputs_and_messages(
    start_scheduler, js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch writes all its rows in one statement: the inputs and outbox rows still get ids in the
    order they were decided, which replay and the relay read them by."""
    app: SchedulerApp = await start_scheduler()
    assert app.service is not None
    publisher = app.service.relay._publisher
    monkeypatch.setattr(publisher, "send", _never_sent)  # keep the rows, to read them back
    job_id = await running_job_unsent(app)
    reports = [now(log_line(job_id)).model_copy(update={"message": f"line {i}"}) for i in range(60)]
    await app.service.apply_batch(
        [Delivery(report, source=f"test:{job_id}:{i}") for i, report in enumerate(reports)]
    )
    assert app.engine is not None
    async with app.engine.connect() as conn:
        messages = (
            await conn.execute(
                text("SELECT msg_id FROM scheduler_outbox WHERE job_id = :j AND stream = :s ORDER BY id"),
                {"j": job_id, "s": subjects.EVENTS_STREAM},
            )
        ).scalars()
        versions = [int(msg_id.rsplit(":", 1)[1]) for msg_id in messages]
        lines = (
            await conn.execute(
                text(
                    "SELECT body->>'message' FROM scheduler_inputs"
                    " WHERE job_id = :j AND kind = 'report.log' ORDER BY id"
                ),
                {"j": job_id},
            )
        ).scalars()
        assert list(lines) == [f"line {i}" for i in range(60)]
    assert versions == list(range(1, 3 + 60 + 1))
    replayed = replay(await load_inputs(app.settings, job_id))
    assert replayed.mismatches == []


async def _never_sent(messages) -> None:
    raise TimeoutError("no PubAck")


async def running_job_unsent(app: SchedulerApp) -> str:
    assert app.service is not None
    command = submit(pool=new_pool())
    await app.service.apply(command, source=f"test:{command.job_id}:submit")
    await app.service.apply(now(heartbeat(command.job_id)), source=f"test:{command.job_id}:hb")
    return command.job_id


async def test_sent_rows_are_deleted_by_the_next_transaction(start_scheduler, js: JetStreamContext) -> None:
    app: SchedulerApp = await start_scheduler(tick_interval=30.0)
    assert app.service is not None
    job_id = await running_job(app, js)
    await app.service.apply_batch([Delivery(now(progress(job_id)), source=f"test:{job_id}:p")])
    assert await outbox_size(app, job_id) == 1  # sent (its PubAck came), not deleted yet
    assert len(app.service.relay.sent) >= 1
    other = submit(pool=new_pool())
    await app.service.apply(other, source=f"test:{other.job_id}:submit")
    assert await outbox_size(app, job_id) == 0  # deleted by the other job's transaction
    assert await app.service.relay.relay_leftovers(older_than=0) == 0  # nothing is sent twice
    assert await outbox_size(app, other.job_id) == 0
