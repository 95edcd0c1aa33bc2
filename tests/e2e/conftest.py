"""The whole platform as a user meets it: `vtp up` as a child process (api, scheduler, events, pool) on the
session's real nats-server and Postgres, driven over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError

from contracts.streams import STREAMS
from messaging.nats import connect
from tests.e2e.helpers import FAST_TIMERS, SMALL_VALIDATION_LIMITS, Platform, upload_dataset
from vtp.embedded.nats_server import NatsServer
from vtp.embedded.ports import free_port
from vtp.launch import launch


async def delete_streams(nats_url: str) -> None:
    client = await connect(nats_url, "e2e-reset")
    js = client.jetstream()
    for stream in STREAMS:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream.name)
    await client.close()


@pytest.fixture(scope="package")
def platform(
    session_dir: Path, nats_server: NatsServer, database_url_for: Callable[[str], str]
) -> Iterator[Platform]:
    """A platform as fresh as after a first `vtp up`, on the session's servers: the streams other suites left
    behind are deleted first (the services recreate them), and its tables live in a database of their own.
    Package-scoped, so its scheduler and pool stop when this suite ends."""
    asyncio.run(delete_streams(nats_server.url))
    env = {
        **os.environ,
        **FAST_TIMERS,
        **SMALL_VALIDATION_LIMITS,
        "NATS_URL": nats_server.url,
        "NATS_MONITOR_URL": nats_server.monitor_url,
        "DATABASE_URL": database_url_for("vtp_e2e"),
    }
    launched = launch(session_dir / "platform", free_port(), env, session_dir / "vtp-up.log")
    platform = Platform(**vars(launched))
    yield platform
    assert platform.stop(30) == 0, "vtp up did not exit cleanly on SIGINT"


@pytest.fixture(scope="package")
def dataset_id(platform: Platform, session_dir: Path) -> str:
    from vtp.synthetic import make_imagefolder_archive

    return upload_dataset(platform, make_imagefolder_archive(session_dir / "shapes.zip"), "imagefolder")
