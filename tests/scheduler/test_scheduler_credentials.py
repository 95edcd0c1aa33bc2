"""Credentials on demand (contracts/credentials.py), asked of a real scheduler over a real nats-server."""

from __future__ import annotations

import time
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from scheduler_factories import cancel, submit
from scheduler_helpers import dispatched, new_pool, publish, wait_events

from contracts import subjects
from contracts.credentials import Grant, Renewal, TakeOver
from contracts.dispatch import DispatchJob
from services.common import tokens


async def ask(nc: NATS, subject: str, body: bytes) -> Grant:
    reply = await nc.request(subject, body, timeout=5)
    return Grant.model_validate_json(reply.data)


async def take_over(nc: NATS, pool: str, job_id: str, attempt: int = 1) -> Grant:
    request = TakeOver(job_id=job_id, attempt=attempt)
    return await ask(nc, subjects.take_over_subject(pool), request.model_dump_json().encode())


async def queued_job(start_scheduler, js: JetStreamContext, ttl: int = 3600) -> DispatchJob:
    await start_scheduler(callback_token_ttl=ttl)
    pool = new_pool()
    command = submit(pool=pool)
    await publish(js, subjects.SUBMIT_JOB, command, msg_id=command.job_id)
    [dispatch] = await dispatched(js, pool, 1)
    return dispatch


async def test_a_take_over_grants_a_new_token_and_new_urls_for_the_current_attempt(
    start_scheduler, js: JetStreamContext, nc: NATS, callback_keys: tuple[Path, Path]
) -> None:
    dispatch = await queued_job(start_scheduler, js, ttl=120)
    job_id, pool = dispatch.job_id, dispatch.pool
    assert dispatch.expires_at is not None
    asked_at = time.time()

    grant = await take_over(nc, pool, job_id)

    assert grant.refused is None
    assert grant.callback_token is not None
    claims = tokens.verify(callback_keys[1].read_text(), grant.callback_token)
    assert (claims.job_id, claims.attempt) == (job_id, 1)
    assert claims.expires_at - asked_at <= 121
    assert grant.expires_at is not None
    assert abs(grant.expires_at.timestamp() - claims.expires_at) < 1
    assert grant.dataset_url is not None
    assert "datasets/ds1/data.zip" in grant.dataset_url
    assert grant.resume_url is None  # attempt 1 has nothing to resume from


async def test_a_renewal_grants_a_token_only(
    start_scheduler, js: JetStreamContext, nc: NATS, callback_keys: tuple[Path, Path]
) -> None:
    job_id = (await queued_job(start_scheduler, js)).job_id
    body = Renewal(job_id=job_id, attempt=1).model_dump_json().encode()

    grant = await ask(nc, subjects.CREDENTIALS_RENEW, body)

    assert grant.callback_token is not None
    assert tokens.verify(callback_keys[1].read_text(), grant.callback_token).job_id == job_id
    assert grant.dataset_url is None


async def test_nothing_is_granted_but_to_the_current_attempt_of_a_live_job_on_its_pool(
    start_scheduler, js: JetStreamContext, nc: NATS
) -> None:
    dispatch = await queued_job(start_scheduler, js)
    job_id, pool = dispatch.job_id, dispatch.pool

    assert (await take_over(nc, "another-pool", job_id)).refused == f"job is on pool {pool}, not another-pool"
    stale = await take_over(nc, pool, job_id, attempt=2)
    assert stale.refused == "attempt 2 is not current (the job is at attempt 1)"
    assert stale.callback_token is None
    assert (await take_over(nc, pool, "no-such-job")).refused == "unknown job"
    unreadable = await ask(nc, subjects.take_over_subject(pool), b"{not json")
    assert unreadable.refused is not None
    assert unreadable.refused.startswith("unreadable credentials request")

    await publish(js, subjects.CANCEL_JOB, cancel(job_id, time=2))
    await wait_events(js, job_id, 3)
    assert (await take_over(nc, pool, job_id)).refused == "job is CANCELLED"
