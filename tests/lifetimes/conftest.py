"""A platform whose credentials live a few seconds, on a nats-server of its own (its streams and consumers
meet no other suite's), so that jobs outlive the credentials they were dispatched with."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import FAST_TIMERS, Platform, upload_dataset
from vtp.embedded.nats_server import NatsServer, start_nats_server
from vtp.embedded.ports import free_port
from vtp.launch import launch

# Long enough for a trainer to start and make its first callback; shorter than a queued job waits here and
# than its run.
TOKEN_TTL = 10


@pytest.fixture(scope="package")
def lifetimes_nats(session_dir: Path) -> Iterator[NatsServer]:
    server = start_nats_server(session_dir / "lifetimes-nats")
    yield server
    server.process.kill()
    server.process.wait()


@pytest.fixture(scope="package")
def platform(
    session_dir: Path, lifetimes_nats: NatsServer, database_url_for: Callable[[str], str]
) -> Iterator[Platform]:
    env = {
        **os.environ,
        **FAST_TIMERS,
        "VTP_CALLBACK_TOKEN_TTL": str(TOKEN_TTL),
        "NATS_URL": lifetimes_nats.url,
        "NATS_MONITOR_URL": lifetimes_nats.monitor_url,
        "DATABASE_URL": database_url_for("vtp_lifetimes"),
    }
    data_dir = session_dir / "lifetimes-platform"
    launched = launch(data_dir, free_port(), env, session_dir / "vtp-up-lifetimes.log")
    platform = Platform(**vars(launched))
    yield platform
    assert platform.stop(30) == 0, "vtp up did not exit cleanly on SIGINT"


@pytest.fixture(scope="package")
def dataset_id(platform: Platform, session_dir: Path) -> str:
    from vtp.synthetic import make_imagefolder_archive

    archive = make_imagefolder_archive(session_dir / "lifetimes-shapes.zip")
    return upload_dataset(platform, archive, "imagefolder")
