"""A nats-server of this package's own, with the authorization `vtp` generates (a user per role; pools
gpu-a and gpu-b), and connections as each role that record what the server refused them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from messaging import nats as common_nats
from messaging.permissions import ADMIN
from vtp.embedded.nats_server import NatsServer, start_nats_server
from vtp.nats_auth import NatsUsers

POOL_A, POOL_B = "gpu-a", "gpu-b"
REFUSAL_WAIT = 2.0


@dataclass
class SecuredNats:
    server: NatsServer
    users: NatsUsers
    log_path: Path

    def violations(self) -> list[str]:
        """What the server logged refusing (`Publish Violation`, `Subscription Violation`)."""
        return [line for line in self.log_path.read_text().splitlines() if "Violation" in line]


@pytest.fixture(scope="package")
async def secured(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecuredNats]:
    folder = tmp_path_factory.mktemp("nats-auth")
    users = NatsUsers.ensure(folder / "secrets", [POOL_A, POOL_B])
    server = start_nats_server(folder / "nats", authorization=users.authorization())
    try:
        await common_nats.prepare(server.url, [POOL_A, POOL_B], users.credentials(ADMIN))
        yield SecuredNats(server, users, folder / "nats" / "nats-server.log")
    finally:
        server.stop()


@dataclass
class RoleClient:
    """Connected as one role's user the way the services connect (`messaging.nats.connect`: the
    role's inbox prefix); `errors` holds what the server sent back, permission violations included."""

    user: str
    nc: NATS
    errors: asyncio.Queue[str]

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream(timeout=REFUSAL_WAIT)

    async def refused_publish(self, subject: str) -> None:
        """Publish (with a reply inbox, as a JetStream API request would) and assert the server refused it."""
        await self.nc.publish(subject, b"{}", reply=self.nc.new_inbox())
        await self._assert_refused(f'publish to "{subject}"')

    async def refused_subscribe(self, subject: str) -> None:
        await self.nc.subscribe(subject)
        await self._assert_refused(f'subscription to "{subject}"')

    async def _assert_refused(self, what: str) -> None:
        await self.nc.flush()
        error = await asyncio.wait_for(self.errors.get(), REFUSAL_WAIT)
        # nats-py hands the server's error on in lower case.
        assert error == f"nats: permissions violation for {what}".lower()

    def assert_nothing_refused(self) -> None:
        errors = [self.errors.get_nowait() for _ in range(self.errors.qsize())]
        assert errors == [], f"{self.user} was refused: {errors}"


ConnectAs = Callable[[str], Awaitable[RoleClient]]


@pytest.fixture
async def connect_as(secured: SecuredNats) -> AsyncIterator[ConnectAs]:
    clients: list[RoleClient] = []

    async def connect(user: str) -> RoleClient:
        errors: asyncio.Queue[str] = asyncio.Queue()

        async def on_error(exc: Exception) -> None:
            errors.put_nowait(str(exc))

        nc = await common_nats.connect(
            secured.server.url, f"test-{user}", secured.users.credentials(user), error_cb=on_error
        )
        clients.append(client := RoleClient(user, nc, errors))
        return client

    yield connect
    for client in clients:
        await client.nc.close()
    for client in clients:
        client.assert_nothing_refused()
