"""Who may do what on NATS: one user per role, each allowed only the subjects its code uses.

The one table of NATS permissions, built from `contracts.subjects`. `vtp admin nats-config` and `vtp up`
render it into the server's `authorization` block (vtp/nats_auth.py); tests/nats_auth proves it against a
real nats-server. Everything not listed here is refused.

Two rules hold for every role:
- A role receives only on its own inbox, `_INBOX.<user>.>`: JetStream API answers, PubAcks and pulled
  messages come back there (`connect` sets the client's inbox prefix), so no role reads another's replies,
  nor another pool's dispatch messages.
- Only `admin` manages streams (`vtp up` and `vtp pools prepare` create them before the services start).
  Every role may read the platform streams' info, which is how `ensure_streams` finds them in place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from contracts import subjects
from contracts.jobs import POOL_PATTERN

ADMIN = "admin"
API = "api"
SCHEDULER = "scheduler"
EVENTS = "events"
RUNNER_PREFIX = "runner-"

STREAM_NAMES = (
    subjects.COMMANDS_STREAM,
    subjects.DISPATCH_STREAM,
    subjects.REPORTS_STREAM,
    subjects.EVENTS_STREAM,
)

JS_API = "$JS.API"


@dataclass(frozen=True)
class Role:
    """`responds`: may answer the requests it receives (publish once to each one's reply subject, which
    lies in the requester's inbox)."""

    user: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    responds: bool = False


@dataclass(frozen=True)
class PushConsumer:
    """A durable push consumer: the server stores its deliver subject, which must lie in its owner's
    inbox (a consumer made before NATS permissions delivers to a bare `_INBOX.<id>`)."""

    owner: str
    stream: str
    durable: str


PUSH_CONSUMERS = (
    PushConsumer(API, subjects.EVENTS_STREAM, subjects.API_READ_MODEL_CONSUMER),
    PushConsumer(SCHEDULER, subjects.COMMANDS_STREAM, subjects.SCHEDULER_COMMANDS_CONSUMER),
    PushConsumer(SCHEDULER, subjects.REPORTS_STREAM, subjects.SCHEDULER_REPORTS_CONSUMER),
    PushConsumer(EVENTS, subjects.EVENTS_STREAM, subjects.EVENTS_JOB_STATUS_CONSUMER),
)


def runner_user(pool: str) -> str:
    """The user a pool's supervisor and its runners share."""
    if not re.fullmatch(POOL_PATTERN, pool):
        raise ValueError(f"not a pool name: {pool!r} (expected {POOL_PATTERN})")
    return f"{RUNNER_PREFIX}{pool}"


def inbox_prefix(user: str) -> str:
    return f"_INBOX.{user}"


def _inbox(user: str) -> tuple[str, ...]:
    return (f"{inbox_prefix(user)}.>",)


def _stream_info() -> tuple[str, ...]:
    return tuple(f"{JS_API}.STREAM.INFO.{stream}" for stream in STREAM_NAMES)


def _durable(stream: str, durable: str) -> tuple[str, ...]:
    """Create, update and read one durable consumer by name: nats-py creates durables on the legacy
    `DURABLE.CREATE` subject; newer clients name the consumer (and its filter) in `CREATE`."""
    return (
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
    )


def _pull(stream: str, durable: str) -> tuple[str, ...]:
    """Pull from one durable consumer and settle its messages (ack, nak, in_progress and term share a
    subject)."""
    return (f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}", f"$JS.ACK.{stream}.{durable}.>")


def _own_push_consumer(stream: str, durable: str) -> tuple[str, ...]:
    """Make (or delete, to make again) one durable push consumer and settle its messages."""
    return (
        *_durable(stream, durable),
        f"{JS_API}.CONSUMER.DELETE.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    )


def admin() -> Role:
    """Streams and consumers: `vtp up` before it starts the services, `vtp pools prepare`, and tools that
    read the history (`python -m services.scheduler.replay`)."""
    return Role(ADMIN, publish=(f"{JS_API}.>",), subscribe=_inbox(ADMIN))


def api() -> Role:
    """Publishes commands; lists the pools' dispatch consumers (the declared pools); keeps its read model
    with the durable push consumer `api-read-model`; serves SSE from ordered consumers (ephemeral, created
    unnamed, answering flow control on `$JS.FC`).

    A permission sees the subject, not the body: creating unnamed consumers on VTP_EVENTS also lets the api
    name an existing consumer of that stream in the body and update it. The api may read the whole history
    anyway; it is the one role trusted with that."""
    events = subjects.EVENTS_STREAM
    read_model = subjects.API_READ_MODEL_CONSUMER
    return Role(
        API,
        publish=(
            subjects.COMMANDS_ALL,
            *_stream_info(),
            *_durable(events, read_model),
            f"$JS.ACK.{events}.{read_model}.>",
            f"{JS_API}.CONSUMER.CREATE.{events}",
            f"{JS_API}.CONSUMER.INFO.{events}.*",
            f"$JS.FC.{events}.>",
            # Which pools are declared (their dispatch consumers), to refuse a job to one that is not.
            f"{JS_API}.CONSUMER.LIST.{subjects.DISPATCH_STREAM}",
        ),
        subscribe=_inbox(API),
    )


def scheduler() -> Role:
    """Takes commands and reports from its two durable push consumers (delivering into its inbox), which it
    may delete to make again (one made as a pull consumer by an older release); publishes job events and
    dispatches; creates the dispatch consumer of a pool it dispatches to first (pools are named by jobs);
    answers credentials requests (contracts/credentials.py)."""
    own = (
        (subjects.COMMANDS_STREAM, subjects.SCHEDULER_COMMANDS_CONSUMER),
        (subjects.REPORTS_STREAM, subjects.SCHEDULER_REPORTS_CONSUMER),
    )
    return Role(
        SCHEDULER,
        publish=(
            subjects.EVENTS_ALL,
            subjects.DISPATCH_ALL,
            *_stream_info(),
            *(subject for stream, durable in own for subject in _own_push_consumer(stream, durable)),
            *_durable(subjects.DISPATCH_STREAM, "*"),
        ),
        subscribe=(*_inbox(SCHEDULER), subjects.CREDENTIALS_ALL),
        responds=True,
    )


def events() -> Role:
    """Publishes trainer reports; follows job statuses with its durable push consumer (delivering into its
    inbox), which it may delete to make again (one made as a pull consumer by an older release); asks the
    scheduler to renew a running trainer's token."""
    stream, durable = subjects.EVENTS_STREAM, subjects.EVENTS_JOB_STATUS_CONSUMER
    return Role(
        EVENTS,
        publish=(
            subjects.REPORTS_ALL,
            subjects.CREDENTIALS_RENEW,
            *_stream_info(),
            *_own_push_consumer(stream, durable),
        ),
        subscribe=_inbox(EVENTS),
    )


def runner(pool: str) -> Role:
    """A pool's runners pull one dispatch message at a time from the pool's consumer and settle it; the
    pool supervisor (same user) only checks that the consumer exists (it reads the lag over HTTP, /jsz).
    Neither may create or change the consumer: its filter decides which pool's jobs it hands out. A runner
    asks for credentials of its own pool's jobs only."""
    user, stream, durable = runner_user(pool), subjects.DISPATCH_STREAM, subjects.pool_consumer(pool)
    return Role(
        user,
        publish=(
            *_stream_info(),
            f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
            *_pull(stream, durable),
            subjects.take_over_subject(pool),
        ),
        subscribe=_inbox(user),
    )


def roles(pools: Iterable[str]) -> tuple[Role, ...]:
    """Every role of a deployment with these pools."""
    return (admin(), api(), scheduler(), events(), *(runner(pool) for pool in sorted(set(pools))))
