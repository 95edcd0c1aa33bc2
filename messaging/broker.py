"""The FastStream broker every long-running part takes its messages through.

Each subscriber states its ack policy; the consumers and streams are declared in `contracts.streams` and put
in place before the parts start (`messaging.nats.prepare`), so nothing here creates a stream.
"""

from __future__ import annotations

from typing import Any

from faststream.nats import NatsBroker
from faststream.security import SASLPlaintext

from messaging.credentials import NatsCredentials
from messaging.nats import RECONNECT, role_inbox


def make_broker(
    url: str, name: str, credentials: NatsCredentials | None = None, **options: Any
) -> NatsBroker:
    """A broker connecting as the role's user (`NATS_USER`, `NATS_PASSWORD` unless `credentials` are
    given), on its own inbox, reconnecting for ever. `options` go to `NatsBroker` as they are."""
    credentials = NatsCredentials() if credentials is None else credentials
    security = None
    if credentials.user and credentials.password:
        security = SASLPlaintext(credentials.user, credentials.password.get_secret_value())
    return NatsBroker(url, name=name, security=security, **RECONNECT, **role_inbox(credentials), **options)
