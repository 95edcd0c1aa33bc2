"""KEDA's contract with the services, against a real nats-server: the ScaledJob the chart renders for a pool
watches exactly the stream, consumer, account and monitoring endpoint the services use, and the lag KEDA's
nats-jetstream scaler reads there counts the waiting dispatch messages and the ones in flight."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import nats
import pytest
from nats.js import JetStreamContext

from contracts import subjects
from messaging import nats as common_nats
from tests.deploy.chart import Helm, only
from trainers import jsz
from vtp.embedded.nats_server import NatsServer

WAITING = 5


async def keda_lag(metadata: dict[str, str]) -> int:
    """What KEDA v2.20 reads for a nats-jetstream trigger (`useHttps` false): its URL, its account match."""
    url = (
        f"http://{metadata['natsServerMonitoringEndpoint']}/jsz"
        f"?acc={metadata['account']}&consumers=true&config=true"
    )
    async with httpx.AsyncClient() as client:
        answer = (await client.get(url, timeout=5)).raise_for_status().json()
    # KEDA finds the account by name only (jsz.consumer_lag also accepts its id).
    assert metadata["account"] in [account["name"] for account in answer["account_details"]]
    return jsz.consumer_lag(answer, metadata["stream"], metadata["consumer"], metadata["account"])


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_server.url)
    yield nc.jetstream()
    await nc.close()


async def test_scaled_job_reads_the_lag_of_the_pool_consumer(
    nats_server: NatsServer, js: JetStreamContext, helm: Helm
) -> None:
    pool = f"keda-{uuid.uuid4().hex[:8]}"
    endpoint = f"127.0.0.1:{nats_server.monitor_port}"
    docs = helm.template(set_values={"pools[0].name": pool, "nats.monitoringEndpoint": endpoint})
    [trigger] = only(docs, "ScaledJob")["spec"]["triggers"]
    assert trigger["type"] == "nats-jetstream"
    metadata = trigger["metadata"]
    assert metadata["natsServerMonitoringEndpoint"] == endpoint
    assert metadata["account"] == jsz.DEFAULT_ACCOUNT
    assert metadata["stream"] == subjects.DISPATCH_STREAM
    assert metadata["consumer"] == subjects.pool_consumer(pool)
    # The services read the same endpoint (the local pool, through NATS_MONITOR_URL).
    assert only(docs, "ConfigMap")["data"]["NATS_MONITOR_URL"] == f"http://{endpoint}"

    # The pool's consumer as the scheduler makes it, and WAITING jobs dispatched to it.
    await common_nats.ensure_streams(js)
    await common_nats.ensure_pool_consumer(js, pool)
    for _ in range(WAITING):
        await js.publish(subjects.dispatch_subject(pool), b"{}", stream=subjects.DISPATCH_STREAM)
    try:
        assert await keda_lag(metadata) == WAITING
        runners = await js.pull_subscribe_bind(subjects.pool_consumer(pool), subjects.DISPATCH_STREAM)
        taken = await runners.fetch(2, timeout=5)
        # Two runners hold a message each (num_ack_pending) while their trainers run: still counted, so
        # the "default" scaling strategy starts `lag - running Jobs` = the waiting ones.
        assert await keda_lag(metadata) == WAITING
        await taken[0].in_progress()
        assert await keda_lag(metadata) == WAITING
        for message in taken:
            await message.ack_sync()
        assert await keda_lag(metadata) == WAITING - 2
        await runners.unsubscribe()
    finally:
        await js.delete_consumer(subjects.DISPATCH_STREAM, subjects.pool_consumer(pool))
