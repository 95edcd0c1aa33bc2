"""Only the admin manages streams and consumers: `prepare` (what `vtp up` runs before the services start)
puts them in place, and a role that finds one missing says what to do rather than hang."""

from __future__ import annotations

import contextlib

import pytest
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import NotFoundError

from contracts import subjects
from messaging import nats as common_nats
from messaging.broker import make_broker
from messaging.permissions import ADMIN, API, inbox_prefix, runner_user
from services.api.read_model import ReadModelConsumer
from tests.nats_auth.conftest import POOL_A, POOL_B, ConnectAs, SecuredNats


async def test_a_read_model_consumer_from_before_permissions_is_pointed_into_the_api_inbox(
    connect_as: ConnectAs, secured: SecuredNats
) -> None:
    admin, api = await connect_as(ADMIN), await connect_as(API)
    stream, durable = subjects.EVENTS_STREAM, subjects.API_READ_MODEL_CONSUMER
    with contextlib.suppress(NotFoundError):
        await admin.js.delete_consumer(stream, durable)
    # As an api without a NATS user made it: delivering to a bare inbox the api's user may not read.
    legacy = ConsumerConfig(
        durable_name=durable,
        deliver_subject="_INBOX.abcdefghijklmnopqrstuv",
        deliver_group=durable,
        ack_policy=AckPolicy.EXPLICIT,
    )
    await admin.js.add_consumer(stream, legacy)

    await common_nats.prepare(secured.server.url, [POOL_A, POOL_B], secured.users.credentials(ADMIN))

    info = await admin.js.consumer_info(stream, durable)
    assert info.config.deliver_subject == f"{inbox_prefix(API)}.{durable}"
    # The api's broker binds to it: subscribing to its deliver subject is allowed now.
    broker = make_broker(secured.server.url, "test-api-broker", secured.users.credentials(API))
    read_model = ReadModelConsumer(None)  # type: ignore[arg-type]
    read_model.subscribe(broker)
    await broker.start()
    await read_model.stop()
    await broker.stop()
    api.assert_nothing_refused()


async def test_a_role_that_may_not_create_its_consumer_says_so(
    connect_as: ConnectAs, secured: SecuredNats
) -> None:
    admin, pool_b = await connect_as(ADMIN), await connect_as(runner_user(POOL_B))
    await admin.js.delete_consumer(subjects.DISPATCH_STREAM, subjects.pool_consumer(POOL_B))
    try:
        with pytest.raises(RuntimeError, match=r"consumer pool-gpu-b is missing.*`vtp pools prepare`"):
            await common_nats.ensure_pool_consumer(pool_b.js, POOL_B)
        refused = await pool_b.errors.get()
        assert refused.startswith("nats: permissions violation for publish to")
    finally:
        await common_nats.prepare(secured.server.url, [POOL_A, POOL_B], secured.users.credentials(ADMIN))
