"""How the runner settles its one dispatch message, on a real nats-server with a real events service: a
trainer that cannot be started fails its attempt (reported `done(failed)`) and the message is acked, never
redelivered; a pool without its consumer is an error, and the runner does not make one."""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from contracts import subjects
from contracts.credentials import Grant
from contracts.dispatch import DispatchJob
from contracts.reports import DoneReport
from messaging import nats as common_nats
from services.events.testing import stored_reports
from tests.trainers.test_runner_timm import dispatch, lag, of_kind, publish
from trainers import isolation, runner
from vtp.embedded.ports import free_port


def settings(platform, pool: str) -> runner.RunnerSettings:
    return runner.RunnerSettings(
        nats_url=platform.nats_url, pool=pool, heartbeat_interval=0.2, fetch_timeout=1.0
    )


def raising_preexec() -> None:
    raise OSError("no such uid")


def raising_make_work_dir(user: isolation.TrainerUser) -> Path:
    raise OSError(errno.EROFS, "Read-only file system", "/tmp/vtp-trainer-x")


async def assert_failed_and_acked(platform, js, pool: str, job_id: str, reason: str) -> None:
    found = await stored_reports(js, job_id)
    [done] = of_kind(found, DoneReport)
    assert done.status == "failed"
    assert done.reason is not None
    assert done.reason.startswith("could not start the trainer: "), done.reason
    assert reason in done.reason
    assert await asyncio.to_thread(lag, platform, pool) == 0
    # Acked: nothing comes back for the next runner, not even after the ack wait.
    info = await js.consumer_info(subjects.DISPATCH_STREAM, subjects.pool_consumer(pool))
    assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (0, 0, 0)
    assert await runner.run(settings(platform, pool)) == 0


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ("interpreter", "No such file or directory"),
        ("preexec", "Exception occurred in preexec_fn"),
        ("work folder", "no work folder"),
    ],
)
async def test_a_trainer_that_cannot_start_fails_its_attempt(
    platform, js, pool, monkeypatch: pytest.MonkeyPatch, broken: str, reason: str
) -> None:
    job = dispatch(platform, pool)
    await publish(js, job)
    if broken == "interpreter":  # an image whose interpreter is gone, or a path that changed
        monkeypatch.setattr(runner, "trainer_command", lambda framework: ["/nonexistent/python", "-m", "x"])
    elif broken == "preexec":  # the user switch, or PR_SET_PDEATHSIG, failed in the child
        monkeypatch.setattr(runner, "dies_with_parent", lambda: raising_preexec)
    else:  # a full or read-only scratch disk
        monkeypatch.setattr(isolation, "make_work_dir", raising_make_work_dir)
    assert await runner.run(settings(platform, pool)) == 1
    await assert_failed_and_acked(platform, js, pool, job.job_id, reason)


async def test_a_runner_makes_no_consumer(platform, js, pool) -> None:
    assert await runner.run(settings(platform, pool)) == 1
    with pytest.raises(NotFoundError):
        await js.consumer_info(subjects.DISPATCH_STREAM, subjects.pool_consumer(pool))


async def test_a_second_message_stays_for_the_next_runner(platform, js, pool) -> None:
    """One job per runner: the runner pulls one message, never a second one it would hold while it exits."""
    await common_nats.ensure_pool_consumer(js, pool)
    for _ in range(2):
        await js.publish(subjects.dispatch_subject(pool), b"{}", stream=subjects.DISPATCH_STREAM)
    assert await runner.run(settings(platform, pool)) == 1  # the first: unparseable, terminated
    info = await js.consumer_info(subjects.DISPATCH_STREAM, subjects.pool_consumer(pool))
    assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (1, 0, 0)
    assert await runner.run(settings(platform, pool)) == 1
    assert await runner.run(settings(platform, pool)) == 0  # terminated, not redelivered: nothing left


async def test_an_unreachable_events_service_hands_the_job_back_for_later(
    platform, js, pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transient: nak with a delay, and the message comes back for a later runner."""
    monkeypatch.setattr(runner, "NAK_DELAY", 0.5)
    job = dispatch(platform, pool)
    await publish(js, job.model_copy(update={"callback_url": f"http://127.0.0.1:{free_port()}/v1/callbacks"}))
    assert await runner.run(settings(platform, pool)) == 1  # after the callback client's retries
    await asyncio.sleep(1.0)  # the nak's delay
    found = await stored_reports(js, job.job_id)
    assert found == []  # nothing reported: the job never reached the events service
    monkeypatch.setattr(runner, "run_job", handed_back)
    assert await runner.run(settings(platform, pool)) == 7  # redelivered (its second delivery), acked
    info = await js.consumer_info(subjects.DISPATCH_STREAM, subjects.pool_consumer(pool))
    assert (info.num_pending, info.num_ack_pending) == (0, 0)


async def handed_back(msg, job, settings, broker) -> int:  # type: ignore[no-untyped-def]
    """The later runner, as far as the message goes: it sees the redelivery, and acks."""
    assert msg.raw_message.metadata.num_delivered == 2
    await msg.ack()
    return 7


@contextlib.asynccontextmanager
async def answering(platform, grant: Grant) -> AsyncIterator[None]:  # type: ignore[no-untyped-def]
    """A responder on the take-over subjects, standing in for the scheduler (tests/scheduler asks the real
    one): what is tested here is what the runner does with the answer."""
    nc = await common_nats.connect(platform.nats_url, "take-over-responder")

    async def answer(msg: Msg) -> None:
        await msg.respond(grant.model_dump_json().encode())

    await nc.subscribe(subjects.take_over_subject("*"), cb=answer)
    try:
        yield
    finally:
        await nc.close()


def expiring(job: DispatchJob) -> DispatchJob:
    return job.model_copy(update={"expires_at": datetime.now(UTC) + timedelta(seconds=5)})


async def test_credentials_about_to_expire_and_no_scheduler_to_renew_them_hand_the_job_back(
    platform, js, pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "NAK_DELAY", 0.5)
    job = expiring(dispatch(platform, pool))
    await publish(js, job)
    assert await runner.run(settings(platform, pool)) == 1  # no responder: transient
    await asyncio.sleep(1.0)
    assert await stored_reports(js, job.job_id) == []  # it never ran
    info = await js.consumer_info(subjects.DISPATCH_STREAM, subjects.pool_consumer(pool))
    assert info.num_pending + info.num_ack_pending == 1  # handed back, not dropped


async def test_credentials_refused_at_take_over_drop_the_job(platform, js, pool) -> None:
    job = expiring(dispatch(platform, pool))
    await publish(js, job)
    async with answering(platform, Grant(refused="job is CANCELLED")):
        assert await runner.run(settings(platform, pool)) == 0
    assert await stored_reports(js, job.job_id) == []
    assert await asyncio.to_thread(lag, platform, pool) == 0  # acked: no runner gets it again
