"""Scheduler fixtures: migrated tables, a callback key pair, and a scheduler running in-process against the
session's real nats-server and Postgres."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import subjects
from messaging.nats import connect, ensure_streams
from services.common import db, tokens
from services.scheduler.app import SchedulerApp
from services.scheduler.settings import SchedulerSettings


@pytest.fixture(scope="session")
def scheduler_database(postgres_url: str) -> str:
    db.upgrade("scheduler", postgres_url)
    return postgres_url


@pytest.fixture(scope="session")
def callback_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tokens.generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def scheduler_settings(
    nats_server: Any, scheduler_database: str, callback_keys: tuple[Path, Path], tmp_path: Path
) -> SchedulerSettings:
    return SchedulerSettings(
        nats_url=nats_server.url,
        database_url=scheduler_database,
        data_dir=tmp_path,
        callback_private_key_file=callback_keys[0],
        heartbeat_timeout=30.0,
        retry_backoff_base=0.2,
        retry_backoff_max=1.0,
        tick_interval=0.1,
        # The factories' jobs are submitted in January 2026 (scheduler_factories.T0): a queue timeout would
        # fail them at the first tick. Tests of the timeout set it.
        queue_timeout=0,
        db_pool_size=4,
        batch_size=32,
        parallel_batches=2,
    )


@pytest.fixture
async def nc(nats_server: Any) -> AsyncIterator[NATS]:
    client = await connect(nats_server.url, name="scheduler-tests")
    await ensure_streams(client.jetstream())
    yield client
    await client.close()


@pytest.fixture
def js(nc: NATS) -> JetStreamContext:
    return nc.jetstream()


StartScheduler = Callable[..., Awaitable[SchedulerApp]]


@pytest.fixture
async def start_scheduler(
    scheduler_settings: SchedulerSettings, js: JetStreamContext
) -> AsyncIterator[StartScheduler]:
    """Start the scheduler (with settings overridden by keyword); every one started is stopped afterwards,
    and its durable consumers removed: work-queue streams refuse overlapping consumers, and tests of other
    parts sharing this nats-server may need their own."""
    started: list[SchedulerApp] = []

    async def start(**overrides: Any) -> SchedulerApp:
        app = SchedulerApp(scheduler_settings.model_copy(update=overrides))
        await app.start()
        started.append(app)
        return app

    yield start
    for app in started:
        await app.stop()
    if started:
        for stream, durable in (
            (subjects.COMMANDS_STREAM, subjects.SCHEDULER_COMMANDS_CONSUMER),
            (subjects.REPORTS_STREAM, subjects.SCHEDULER_REPORTS_CONSUMER),
        ):
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(stream, durable)
