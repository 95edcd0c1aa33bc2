"""NATS users of a deployment: a generated password per role, kept in the role's env file, and the
nats-server `authorization` block that gives each user its role's permissions
(messaging/permissions.py).

`<folder>/<user>.env` holds `NATS_USER` and `NATS_PASSWORD` (0600): what a process of that role needs in its
environment. `vtp admin nats-config` writes them and the server block; `vtp up` keeps them under
`<data-dir>/secrets/nats` and starts its nats-server with the block. Passwords are never printed or logged.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from messaging import permissions as nats_permissions
from messaging.credentials import NatsCredentials
from messaging.permissions import Role
from vtp.client import read_env_file, write_env_file
from vtp.embedded.nats_server import write_private

SERVER_CONFIG = "nats-auth.conf"


def env_file(folder: Path, user: str) -> Path:
    return folder / f"{user}.env"


@dataclass(frozen=True)
class NatsUsers:
    roles: tuple[Role, ...]
    passwords: dict[str, str]

    @classmethod
    def ensure(cls, folder: Path, pools: Iterable[str]) -> NatsUsers:
        """The users of every role for these pools. A password is generated once and kept in the user's env
        file, so a restart, or a run for more pools, leaves every existing credential as it was."""
        roles = nats_permissions.roles(pools)
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        passwords = {}
        for role in roles:
            path = env_file(folder, role.user)
            password = read_env_file(path).get("NATS_PASSWORD") if path.exists() else None
            if not password:
                password = secrets.token_urlsafe(32)
                write_env_file(path, {"NATS_USER": role.user, "NATS_PASSWORD": password})
            passwords[role.user] = password
        return cls(roles, passwords)

    def environ(self, user: str) -> dict[str, str]:
        return {"NATS_USER": user, "NATS_PASSWORD": self.passwords[user]}

    def credentials(self, user: str) -> NatsCredentials:
        return NatsCredentials(user=user, password=SecretStr(self.passwords[user]))

    def authorization(self) -> str:
        """The server's `authorization` block, users in the default account `$G` (where KEDA and the local
        pool read consumer lag: `/jsz?acc=$G`). NATS configuration is a superset of JSON."""
        users = [
            {
                "user": role.user,
                "password": self.passwords[role.user],
                "permissions": {
                    "publish": {"allow": list(role.publish)},
                    "subscribe": {"allow": list(role.subscribe)},
                    **({"allow_responses": True} if role.responds else {}),
                },
            }
            for role in self.roles
        ]
        return f"authorization: {json.dumps({'users': users}, indent=2)}\n"

    def write_server_config(self, folder: Path) -> Path:
        """`<folder>/nats-auth.conf`, for nats-server's configuration to `include` (0600: it holds the
        passwords)."""
        path = folder / SERVER_CONFIG
        write_private(path, self.authorization())
        return path
