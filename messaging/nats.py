"""Connecting to NATS as a role, and putting the streams and consumers of `contracts.streams` in place."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from contracts import streams, subjects
from messaging.credentials import NatsCredentials
from messaging.permissions import PUSH_CONSUMERS, PushConsumer, inbox_prefix

log = logging.getLogger(__name__)


# Reconnects that never give up: every part outlives a NATS restart.
RECONNECT = {"max_reconnect_attempts": -1, "reconnect_time_wait": 0.5}


def role_inbox(credentials: NatsCredentials) -> dict[str, Any]:
    """Receive on the role's own inbox, the only one its NATS permissions let it read
    (messaging/permissions.py); nothing without a user."""
    return {"inbox_prefix": inbox_prefix(credentials.user)} if credentials.user else {}


async def connect(url: str, name: str, credentials: NatsCredentials | None = None, **options: Any) -> NATS:
    """A plain nats-py connection for tools (prepare, replay, benchmarks); the services and the runner
    take messages through `messaging.broker`.

    As the role's user (`NATS_USER`, `NATS_PASSWORD` unless `credentials` are given). `options` go to
    `nats.connect` as they are (tests: `error_cb`).
    """
    credentials = NatsCredentials() if credentials is None else credentials
    login: dict[str, Any] = {}
    if credentials.user and credentials.password:
        login = {"user": credentials.user, "password": credentials.password.get_secret_value()}
    return await nats.connect(url, name=name, **RECONNECT, **login, **role_inbox(credentials), **options)


async def ensure_streams(js: JetStreamContext) -> None:
    """Create a missing stream and update one that differs from its declaration. Idempotent; every
    service calls it at start-up.

    Under NATS permissions only the admin may create or update streams (`vtp up` and `vtp pools prepare`
    do before the services start), so a service only reads that each stream is there as declared.
    """
    for config in streams.STREAMS:
        assert config.name is not None
        try:
            differs = _differs((await js.stream_info(config.name)).config, config)
        except NotFoundError:
            differs = True
        if differs:
            await _change_or_explain(_put_stream(js, config), f"stream {config.name}")


async def _put_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)


def _differs(actual: Any, declared: Any) -> bool:
    """Whether a field the declaration sets has another value on the server (what it leaves unset is the
    server's to choose)."""
    return any(
        getattr(actual, field.name) != value
        for field in dataclasses.fields(declared)
        if (value := getattr(declared, field.name)) is not None
    )


async def _change_or_explain(change: Awaitable[Any], what: str) -> None:
    # A publish NATS permissions refuse gets no answer at all, only a timeout: say what it likely means.
    try:
        await change
    except nats.errors.TimeoutError as exc:
        raise RuntimeError(
            f"{what} is missing or differs from its declaration, and creating or updating it got no answer: "
            "is this NATS user allowed to? Run `vtp pools prepare` as the admin user first."
        ) from exc


async def ensure_pool_consumer(js: JetStreamContext, pool: str) -> None:
    """The pool's dispatch consumer (`contracts.streams.pool_consumer`). Idempotent; created or changed
    only when missing or different (runners may read it, never change it: its filter decides which pool's
    jobs it hands out).
    """
    durable = subjects.pool_consumer(pool)
    config = streams.pool_consumer(pool)
    try:
        differs = _differs((await js.consumer_info(subjects.DISPATCH_STREAM, durable)).config, config)
    except NotFoundError:
        differs = True
    if differs:
        await _change_or_explain(js.add_consumer(subjects.DISPATCH_STREAM, config), f"consumer {durable}")


async def prepare(url: str, pools: Iterable[str], credentials: NatsCredentials | None = None) -> None:
    """What only the admin may do under NATS permissions, before the services start: the streams, the
    pools' dispatch consumers, and every durable push consumer delivering into its owner's inbox.
    Idempotent."""
    nc = await connect(url, "vtp-prepare", credentials)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        for pool in pools:
            await ensure_pool_consumer(js, pool)
        for consumer in PUSH_CONSUMERS:
            await _deliver_to_owner(js, consumer)
    finally:
        await nc.drain()


async def _deliver_to_owner(js: JetStreamContext, consumer: PushConsumer) -> None:
    """A push consumer made before NATS permissions delivers to a bare `_INBOX.<id>` its owner may not
    read: its owner would subscribe, be refused, and never get a message. Point it into the owner's inbox
    (it keeps its position)."""
    try:
        config = (await js.consumer_info(consumer.stream, consumer.durable)).config
    except NotFoundError:
        return  # its owner creates it, delivering into its own inbox
    inbox = f"{inbox_prefix(consumer.owner)}."
    if config.deliver_subject is None or config.deliver_subject.startswith(inbox):
        return
    config.deliver_subject = f"{inbox}{consumer.durable}"
    await js.add_consumer(consumer.stream, config)
    log.info("%s now delivers to %s", consumer.durable, config.deliver_subject)
