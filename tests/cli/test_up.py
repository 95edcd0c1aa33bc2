"""The parts of `vtp up` that need no running services: secrets, client.env, environment, supervision."""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import pytest

from vtp import up
from vtp.client import read_env_file, write_env_file
from vtp.embedded.supervision import Child, stop_children, supervise_once


def test_secrets_are_created_once_and_private(tmp_path: Path) -> None:
    first = up.ensure_secrets(tmp_path)
    second = up.ensure_secrets(tmp_path)
    assert first == second
    assert len(first.storage_signing_key) >= 32
    for path in (first.private_key_file, tmp_path / "secrets" / "storage-signing.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.public_key_file.read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_client_env_keeps_the_key_and_refreshes_the_url(tmp_path: Path) -> None:
    write_env_file(tmp_path / "client.env", {"VTP_API_URL": "http://127.0.0.1:8000", "VTP_API_KEY": "kept"})
    path = up.ensure_client_env(tmp_path, "postgresql+asyncpg://unused", "http://127.0.0.1:9000")
    assert read_env_file(path) == {"VTP_API_URL": "http://127.0.0.1:9000", "VTP_API_KEY": "kept"}


def test_external_nats_and_database_start_nothing(tmp_path: Path) -> None:
    environ = {
        "NATS_URL": "nats://n:4222",
        "NATS_MONITOR_URL": "http://n:8222",
        "DATABASE_URL": "postgresql://d",
    }
    infra = up.start_infrastructure(tmp_path, environ)
    assert infra.children == []
    assert (infra.nats_url, infra.nats_monitor_url, infra.database_url) == (
        "nats://n:4222",
        "http://n:8222",
        "postgresql://d",
    )


def test_child_environment(tmp_path: Path) -> None:
    keys = up.ensure_secrets(tmp_path)
    infra = up.Infrastructure("nats://n:1", "http://n:2", "postgresql+asyncpg://d")
    environ = {"PATH": "/bin", "VTP_HEARTBEAT_TIMEOUT": "6", "VTP_STORAGE_SIGNING_KEY": "from-env"}
    env = up.child_environment(environ, tmp_path, infra, keys, api_port=8123, events_port=8124)
    assert env["PATH"] == "/bin"
    assert env["VTP_HEARTBEAT_TIMEOUT"] == "6"  # VTP_* timers pass through
    assert env["VTP_STORAGE_SIGNING_KEY"] == "from-env"
    assert env["NATS_URL"] == "nats://n:1"
    assert env["NATS_MONITOR_URL"] == "http://n:2"
    assert env["DATABASE_URL"] == "postgresql+asyncpg://d"
    assert env["VTP_API_PORT"] == "8123"
    assert env["VTP_EVENTS_PORT"] == "8124"
    assert env["VTP_EVENTS_URL"] == "http://127.0.0.1:8124"
    assert env["VTP_DATA_DIR"] == str(tmp_path)
    assert env["STORAGE_LOCAL_DIR"] == str(tmp_path / "storage")
    assert env["VTP_CALLBACK_PRIVATE_KEY_FILE"] == str(keys.private_key_file)
    assert env["VTP_CALLBACK_PUBLIC_KEY_FILE"] == str(keys.public_key_file)
    generated = up.child_environment({}, tmp_path, infra, keys, api_port=1, events_port=2)
    assert generated["VTP_STORAGE_SIGNING_KEY"] == keys.storage_signing_key


class Crashing(Child):
    def command(self) -> list[str]:
        return [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]


class Sleeping(Child):
    def command(self) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_dead_child_is_reported_and_restarted_with_backoff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    child = Crashing("scheduler", tmp_path / "scheduler.log")
    child.start()
    child.process.wait(10)
    supervise_once([child])
    out = capsys.readouterr().out
    assert "scheduler exited with code 3; restarting in 1s" in out
    assert "boom" in out  # the end of its log
    first = child.process
    supervise_once([child])
    assert child.process is first  # still backing off
    time.sleep(1.1)
    supervise_once([child])
    assert child.process is not first
    child.process.wait(10)
    supervise_once([child])
    assert "restarting in 2s" in capsys.readouterr().out


def test_stop_children_terminates_then_kills(tmp_path: Path) -> None:
    children = [Sleeping(part, tmp_path / f"{part}.log") for part in ("api", "events")]
    for child in children:
        child.start()
    stop_children(children, timeout=5)
    assert [child.process.returncode for child in children] == [-15, -15]


def test_a_busy_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    import socket

    from vtp.client import CliError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not up.port_is_free(port)
        with pytest.raises(CliError, match=f"the API port {port} is already in use"):
            up.run(
                tmp_path, port, environ={"NATS_URL": "nats://unused", "DATABASE_URL": "postgresql://unused"}
            )
    assert not (tmp_path / "secrets").exists()
