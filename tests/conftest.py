"""Session-wide real servers: one nats-server and one PostgreSQL for the whole test run."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vtp.embedded.nats_server import NatsServer, start_nats_server
from vtp.embedded.postgres import start_postgres

# Trainers started by the tests (runners, `vtp up`: they inherit it) checkpoint every epoch, whatever it
# costs, so the resume tests know which epoch a retry continues from. The budget is tested on its own.
os.environ.setdefault("VTP_CHECKPOINT_BUDGET", "1")


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    # Short path: Postgres' unix socket path must stay under ~100 characters.
    path = Path(tempfile.mkdtemp(prefix="vtp-"))
    yield path
    if os.environ.get("VTP_KEEP_TEST_DIR") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_server(session_dir: Path) -> Iterator[NatsServer]:
    server = start_nats_server(session_dir / "nats")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(session_dir: Path) -> str:
    """The embedded server stops when the test process exits."""
    return start_postgres(session_dir / "pg", database="vtp_test")


@pytest.fixture(scope="session")
def database_url_for(session_dir: Path, postgres_url: str) -> Callable[[str], str]:
    """Another database on the same server, for a suite that needs tables of its own."""
    return lambda name: start_postgres(session_dir / "pg", database=name)
