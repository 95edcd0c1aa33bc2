"""The credentials and server configuration `vtp` generates, and who gets which user."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from messaging.permissions import ADMIN, API, EVENTS, SCHEDULER
from vtp import up
from vtp.cli import main
from vtp.client import read_env_file
from vtp.embedded.nats_server import nats_server_binary
from vtp.nats_auth import SERVER_CONFIG, NatsUsers, env_file

ROLE_USERS = [ADMIN, API, SCHEDULER, EVENTS, "runner-gpu-a", "runner-local"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_user_per_role_each_in_a_private_env_file(tmp_path: Path) -> None:
    folder = tmp_path / "nats"
    users = NatsUsers.ensure(folder, ["local", "gpu-a", "local"])
    assert [role.user for role in users.roles] == ROLE_USERS
    assert mode(folder) == 0o700
    for user in ROLE_USERS:
        path = env_file(folder, user)
        assert mode(path) == 0o600
        assert read_env_file(path) == {"NATS_USER": user, "NATS_PASSWORD": users.passwords[user]}
    assert len(set(users.passwords.values())) == len(ROLE_USERS)
    assert all(len(password) >= 40 for password in users.passwords.values())


def test_passwords_are_kept_and_a_new_pool_gets_a_user(tmp_path: Path) -> None:
    first = NatsUsers.ensure(tmp_path, ["local"])
    again = NatsUsers.ensure(tmp_path, ["local", "gpu-b"])
    assert {user: again.passwords[user] for user in first.passwords} == first.passwords
    assert "runner-gpu-b" in again.passwords


def test_a_name_that_is_no_pool_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a pool name"):
        NatsUsers.ensure(tmp_path / "nats", ["GPU.A"])
    assert not (tmp_path / "nats").exists()


def test_admin_nats_config_writes_files_and_prints_no_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nats"
    assert main(["admin", "nats-config", "--out", str(out), "--pool", "gpu-a", "--pool", "local"]) == 0
    printed = capsys.readouterr().out
    users = NatsUsers.ensure(out, ["gpu-a", "local"])
    assert all(str(env_file(out, user)) in printed for user in ROLE_USERS)
    assert not any(password in printed for password in users.passwords.values())
    config = out / SERVER_CONFIG
    assert mode(config) == 0o600
    # nats-server accepts it as configuration.
    check = subprocess.run([nats_server_binary(), "-t", "-c", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_admin_nats_config_defaults_to_the_data_dir_and_the_local_pool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["admin", "nats-config", "--data-dir", str(tmp_path)]) == 0
    assert env_file(tmp_path / "secrets" / "nats", "runner-local").exists()
    assert main(["admin", "nats-config", "--data-dir", str(tmp_path), "--pool", "Bad"]) == 1
    assert "not a pool name" in capsys.readouterr().err


def test_under_vtp_up_each_child_runs_as_its_role(tmp_path: Path) -> None:
    users = NatsUsers.ensure(tmp_path, ["local"])
    infra = up.Infrastructure("nats://n:1", "http://n:2", "postgresql+asyncpg://d", nats_users=users)
    expected = {"api": API, "scheduler": SCHEDULER, "events": EVENTS, "pool": "runner-local"}
    for part, user in expected.items():
        assert infra.nats_environ(part, "local") == users.environ(user)
    # With NATS_URL, vtp up starts no nats-server and sets no user: the environment's own passes through.
    external = up.Infrastructure("nats://n:1", None, "postgresql+asyncpg://d")
    assert external.nats_environ("api", "local") == {}
