"""`vtp pools prepare`: the streams and each pool's dispatch consumer exist before KEDA reads their lag."""

from __future__ import annotations

import asyncio

import httpx
import nats
import pytest

from contracts import subjects
from trainers import jsz
from vtp.cli import main
from vtp.embedded.nats_server import NatsServer


async def delete_consumers(url: str, consumers: list[str]) -> None:
    nc = await nats.connect(url)
    for consumer in consumers:
        await nc.jetstream().delete_consumer(subjects.DISPATCH_STREAM, consumer)
    await nc.close()


def test_prepare_creates_each_pool_consumer_with_no_lag(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NATS_URL", nats_server.url)
    consumers = [subjects.pool_consumer(pool) for pool in ("prep-a", "prep-b")]
    try:
        assert main(["pools", "prepare", "prep-a", "prep-b"]) == 0
        assert main(["pools", "prepare", "prep-a", "prep-b"]) == 0  # idempotent
        assert "ready for: prep-a, prep-b" in capsys.readouterr().out
        with httpx.Client() as client:
            for consumer in consumers:
                assert jsz.read_lag(client, nats_server.monitor_url, subjects.DISPATCH_STREAM, consumer) == 0
    finally:
        asyncio.run(delete_consumers(nats_server.url, consumers))


def test_prepare_refuses_a_name_that_is_no_pool(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pools", "prepare", "GPU.a100"]) == 1
    assert "not a pool name: GPU.a100" in capsys.readouterr().err
