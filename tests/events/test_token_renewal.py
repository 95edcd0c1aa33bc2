"""A heartbeat renews a token past half its life by asking the scheduler (contracts/credentials.py). Here a
responder on the real nats-server answers for the scheduler (tests/scheduler and tests/e2e ask the real one):
what is tested is when the events service asks, what it passes on, and that no answer costs nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from contracts import subjects
from contracts.credentials import Grant, Renewal
from messaging import nats as common_nats
from services.common import tokens


@pytest.fixture
async def nc(nats_server: Any) -> AsyncIterator[NATS]:
    client = await common_nats.connect(nats_server.url, name="renewal-tests")
    yield client
    await client.drain()


async def heartbeat(url: str, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post(
            "/v1/callbacks/heartbeat", json={}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_token_past_half_its_life_comes_back_renewed(events_service, nc: NATS) -> None:
    job_id = uuid.uuid4().hex
    asked: list[Renewal] = []
    renewed = events_service.token(job_id, ttl=600)

    async def answer(msg: Msg) -> None:
        asked.append(Renewal.model_validate_json(msg.data))
        grant = Grant(callback_token=renewed, expires_at=None)
        await msg.respond(grant.model_dump_json().encode())

    subscription = await nc.subscribe(subjects.CREDENTIALS_RENEW, cb=answer)
    try:
        young = events_service.token(job_id, ttl=600)
        assert (await heartbeat(events_service.url, young))["callback_token"] is None
        assert asked == []  # not asked before half the life is spent

        old = events_service.token(job_id, ttl=600, now=time.time() - 301)
        answer_body = await heartbeat(events_service.url, old)
        assert answer_body["stop"] is False
        assert answer_body["callback_token"] == renewed
        assert asked == [Renewal(job_id=job_id, attempt=1)]
        assert tokens.verify(events_service.settings.public_key_pem(), renewed).job_id == job_id
    finally:
        await subscription.unsubscribe()


async def test_without_an_answer_the_heartbeat_is_answered_as_before(events_service, nc: NATS) -> None:
    old = events_service.token(uuid.uuid4().hex, ttl=600, now=time.time() - 400)

    # No responder: NATS says so at once.
    answer_body = await heartbeat(events_service.url, old)
    assert answer_body == {"stop": False, "reason": None, "callback_token": None, "expires_at": None}

    # A responder that answers too late: the heartbeat waits at most the renewal timeout.
    async def too_slow(msg: Msg) -> None:
        await asyncio.sleep(5)

    subscription = await nc.subscribe(subjects.CREDENTIALS_RENEW, cb=too_slow)
    try:
        started = time.monotonic()
        assert (await heartbeat(events_service.url, old))["callback_token"] is None
        assert time.monotonic() - started < 4.5
    finally:
        await subscription.unsubscribe()
