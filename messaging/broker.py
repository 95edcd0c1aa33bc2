"""The FastStream broker every long-running part takes its messages through.

Each subscriber states its ack policy; the consumers and streams are declared in `contracts.streams` and put
in place before the parts start (`messaging.nats.prepare`), so nothing here creates a stream.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream.nats import NatsBroker
from faststream.security import SASLPlaintext

from messaging.credentials import NatsCredentials
from messaging.nats import RECONNECT, role_inbox
from messaging.permissions import inbox_prefix

# FastStream logs every message it receives and processes at this level: per message, not for production's
# INFO (at a few thousand events a second the log lines cost more than the messages).
MESSAGE_LOG_LEVEL = logging.DEBUG


def make_broker(
    url: str, name: str, credentials: NatsCredentials | None = None, **options: Any
) -> NatsBroker:
    """A broker connecting as the role's user (`NATS_USER`, `NATS_PASSWORD` unless `credentials` are
    given), on its own inbox, reconnecting for ever. `options` go to `NatsBroker` as they are."""
    credentials = NatsCredentials() if credentials is None else credentials
    security = None
    if credentials.user and credentials.password:
        security = SASLPlaintext(credentials.user, credentials.password.get_secret_value())
    options.setdefault("log_level", MESSAGE_LOG_LEVEL)
    return NatsBroker(url, name=name, security=security, **RECONNECT, **role_inbox(credentials), **options)


def pull_inbox(credentials: NatsCredentials | None = None) -> bytes:
    """The `inbox_prefix` a pull subscriber needs: its pulled messages come back on the role's own inbox.
    FastStream hands nats-py `_INBOX.` unless told, which NATS permissions let no role read."""
    credentials = NatsCredentials() if credentials is None else credentials
    return f"{inbox_prefix(credentials.user) if credentials.user else '_INBOX'}.".encode()
