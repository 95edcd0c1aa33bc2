"""`vtp up` with the nats-server it starts itself: a user per role, each child connected as its own, and a
dataset validation and a training job go through every part (api, scheduler, events, pool, runner) while
the server refuses nothing."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from messaging.permissions import API, EVENTS, SCHEDULER, runner_user
from tests.e2e.helpers import FAST_TIMERS, SMALL_VALIDATION_LIMITS, Platform, job_request, sse_events, submit
from tests.e2e.helpers import upload_dataset as upload_and_validate
from vtp.embedded.ports import free_port
from vtp.launch import launch
from vtp.nats_auth import env_file


@pytest.fixture(scope="module")
def platform(session_dir: Path, database_url_for: Callable[[str], str]) -> Iterator[Platform]:
    # No NATS_URL: vtp up starts its own nats-server, with authorization.
    env = {name: value for name, value in os.environ.items() if not name.startswith("NATS_")}
    env |= {**FAST_TIMERS, **SMALL_VALIDATION_LIMITS, "DATABASE_URL": database_url_for("vtp_nats_auth")}
    launched = launch(session_dir / "nats-auth-up", free_port(), env, session_dir / "nats-auth-up.log")
    platform = Platform(**vars(launched))
    yield platform
    assert platform.stop(30) == 0, "vtp up did not exit cleanly on SIGINT"


def monitor_url(data_dir: Path) -> str:
    config = (data_dir / "nats" / "nats-server.conf").read_text()
    match = re.search(r"^http: (\S+)$", config, re.MULTILINE)
    assert match is not None
    return f"http://{match.group(1)}"


def connected_users(data_dir: Path, expecting: set[str], within: float = 10.0) -> set[str]:
    """The users of the server's client connections, once `expecting` are among them or `within` passed (a
    CI run once saw one service's connection missing right after start-up, and never again)."""
    deadline = time.monotonic() + within
    while True:
        connections = httpx.get(f"{monitor_url(data_dir)}/connz?auth=true", timeout=5).json()
        users = {c.get("authorized_user") for c in connections["connections"]}
        if expecting <= users or time.monotonic() > deadline:
            return users
        time.sleep(0.2)


def test_every_part_runs_as_its_role_and_nothing_is_refused(platform: Platform, session_dir: Path) -> None:
    folder = platform.data_dir / "secrets" / "nats"
    for user in ("admin", API, SCHEDULER, EVENTS, runner_user("local")):
        assert env_file(folder, user).stat().st_mode & 0o077 == 0
    roles = {API, SCHEDULER, EVENTS}
    assert roles <= connected_users(platform.data_dir, expecting=roles)

    from vtp.synthetic import make_imagefolder_archive

    dataset = upload_and_validate(
        platform, make_imagefolder_archive(session_dir / "nats-auth.zip"), "imagefolder"
    )
    job = submit(platform, job_request(dataset, epochs=1))
    with platform.client() as client:
        types = [event.event for event in sse_events(client, f"/v1/jobs/{job['id']}/events")]
        assert types[-1] == "job.succeeded", types
        assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "SUCCEEDED"

    log = (platform.data_dir / "nats" / "nats-server.log").read_text()
    assert [line for line in log.splitlines() if "Violation" in line] == []
