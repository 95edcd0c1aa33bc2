"""Each role is refused outside its subjects, on a real nats-server with the generated authorization: every
case is one publish or subscribe, and the server's refusal of exactly it is asserted."""

from __future__ import annotations

import nats
import nats.errors
import pytest

from contracts import subjects
from messaging.permissions import ADMIN, API, EVENTS, SCHEDULER, runner_user
from tests.nats_auth.conftest import POOL_A, POOL_B, ConnectAs, SecuredNats

RUNNER_A = runner_user(POOL_A)
JOB = "0123456789abcdef0123456789abcdef"
COMMANDS, DISPATCH, REPORTS, EVENTS_STREAM = (
    subjects.COMMANDS_STREAM,
    subjects.DISPATCH_STREAM,
    subjects.REPORTS_STREAM,
    subjects.EVENTS_STREAM,
)
POOL_A_CONSUMER, POOL_B_CONSUMER = subjects.pool_consumer(POOL_A), subjects.pool_consumer(POOL_B)
JOB_STATUS = subjects.EVENTS_JOB_STATUS_CONSUMER


def js_api(*tokens: str) -> str:
    return ".".join(("$JS.API", *tokens))


def pull(stream: str, consumer: str) -> str:
    return js_api("CONSUMER.MSG.NEXT", stream, consumer)


def settle(stream: str, consumer: str) -> str:
    """A message's reply subject, where ack, nak, in_progress and term go."""
    return f"$JS.ACK.{stream}.{consumer}.1.1.1.1.0"


JOB_SUCCEEDED = subjects.event_subject(JOB, "job.succeeded")
DONE_REPORT = subjects.report_subject(JOB, "done")

REFUSED_PUBLISH = {
    # A runner reports only through the events service (HTTP, JWT per job), and takes only its pool's work.
    "runner cannot publish job events": (RUNNER_A, JOB_SUCCEEDED),
    "runner cannot publish reports": (RUNNER_A, DONE_REPORT),
    "runner cannot publish commands": (RUNNER_A, subjects.SUBMIT_JOB),
    "runner cannot dispatch work": (RUNNER_A, subjects.dispatch_subject(POOL_A)),
    "runner of pool A cannot pull pool B's consumer": (RUNNER_A, pull(DISPATCH, POOL_B_CONSUMER)),
    # Credentials: a runner asks for its own pool's jobs only, and renewing a token is the events service's.
    "runner of pool A cannot ask for pool B's credentials": (RUNNER_A, subjects.take_over_subject(POOL_B)),
    "runner cannot ask for a token's renewal": (RUNNER_A, subjects.CREDENTIALS_RENEW),
    "events cannot ask for a runner's credentials": (EVENTS, subjects.take_over_subject(POOL_A)),
    "api cannot ask for credentials": (API, subjects.CREDENTIALS_RENEW),
    "runner of pool A cannot settle pool B's messages": (RUNNER_A, settle(DISPATCH, POOL_B_CONSUMER)),
    "runner cannot change its pool's consumer (its filter picks the pool)": (
        RUNNER_A,
        js_api("CONSUMER.DURABLE.CREATE", DISPATCH, POOL_A_CONSUMER),
    ),
    "runner cannot re-create its pool's consumer by name with another filter": (
        RUNNER_A,
        js_api("CONSUMER.CREATE", DISPATCH, POOL_A_CONSUMER, subjects.dispatch_subject(POOL_B)),
    ),
    "runner cannot create a consumer of its own on dispatch": (RUNNER_A, js_api("CONSUMER.CREATE", DISPATCH)),
    "runner cannot delete its pool's consumer": (
        RUNNER_A,
        js_api("CONSUMER.DELETE", DISPATCH, POOL_A_CONSUMER),
    ),
    "runner cannot delete a stream": (RUNNER_A, js_api("STREAM.DELETE", DISPATCH)),
    "runner cannot purge a stream": (RUNNER_A, js_api("STREAM.PURGE", DISPATCH)),
    "runner cannot read stored messages directly": (RUNNER_A, js_api("STREAM.MSG.GET", DISPATCH)),
    "runner cannot pull job statuses": (RUNNER_A, pull(EVENTS_STREAM, JOB_STATUS)),
    # The api speaks only in commands; job state is the scheduler's, reports the events service's.
    "api cannot publish reports": (API, DONE_REPORT),
    "api cannot publish job events": (API, JOB_SUCCEEDED),
    "api cannot dispatch work": (API, subjects.dispatch_subject(POOL_A)),
    "api cannot pull the scheduler's commands": (API, pull(COMMANDS, subjects.SCHEDULER_COMMANDS_CONSUMER)),
    "api cannot pull the events service's job statuses": (API, pull(EVENTS_STREAM, JOB_STATUS)),
    "api cannot change the events service's consumer": (
        API,
        js_api("CONSUMER.DURABLE.CREATE", EVENTS_STREAM, JOB_STATUS),
    ),
    "api cannot read dispatches": (API, js_api("CONSUMER.CREATE", DISPATCH)),
    "api cannot create a stream": (API, js_api("STREAM.CREATE", EVENTS_STREAM)),
    "api cannot delete the history": (API, js_api("STREAM.DELETE", EVENTS_STREAM)),
    "api cannot purge the history": (API, js_api("STREAM.PURGE", EVENTS_STREAM)),
    "api cannot delete an event": (API, js_api("STREAM.MSG.DELETE", EVENTS_STREAM)),
    # The scheduler decides from commands and reports; it cannot make them up, nor do a runner's work.
    "scheduler cannot publish submit commands": (SCHEDULER, subjects.SUBMIT_JOB),
    "scheduler cannot publish cancel commands": (SCHEDULER, subjects.CANCEL_JOB),
    "scheduler cannot publish reports": (SCHEDULER, DONE_REPORT),
    "scheduler cannot pull a pool's dispatches": (SCHEDULER, pull(DISPATCH, POOL_A_CONSUMER)),
    "scheduler cannot pull the events service's job statuses": (SCHEDULER, pull(EVENTS_STREAM, JOB_STATUS)),
    "scheduler cannot change a stream": (SCHEDULER, js_api("STREAM.UPDATE", EVENTS_STREAM)),
    "scheduler cannot purge commands": (SCHEDULER, js_api("STREAM.PURGE", COMMANDS)),
    # The events service turns verified callbacks into reports, nothing else.
    "events cannot publish commands": (EVENTS, subjects.CANCEL_JOB),
    "events cannot publish job events": (EVENTS, JOB_SUCCEEDED),
    "events cannot dispatch work": (EVENTS, subjects.dispatch_subject(POOL_A)),
    "events cannot pull the scheduler's reports": (
        EVENTS,
        pull(REPORTS, subjects.SCHEDULER_REPORTS_CONSUMER),
    ),
    "events cannot settle the api's read model": (
        EVENTS,
        settle(EVENTS_STREAM, subjects.API_READ_MODEL_CONSUMER),
    ),
    "events cannot create other consumers on the history": (EVENTS, js_api("CONSUMER.CREATE", EVENTS_STREAM)),
    "events cannot delete a stream": (EVENTS, js_api("STREAM.DELETE", REPORTS)),
    # The admin manages streams and consumers; it does not speak for the services.
    "admin cannot publish job events": (ADMIN, JOB_SUCCEEDED),
    "admin cannot publish commands": (ADMIN, subjects.SUBMIT_JOB),
    "admin cannot publish reports": (ADMIN, DONE_REPORT),
}

REFUSED_SUBSCRIBE = {
    # Everything a role receives comes through JetStream into its own inbox; no plain subscriptions.
    "runner cannot listen to job events": (RUNNER_A, subjects.EVENTS_ALL),
    "runner cannot listen to dispatches": (RUNNER_A, subjects.DISPATCH_ALL),
    "runner cannot read another pool's inbox": (RUNNER_A, f"_INBOX.{runner_user(POOL_B)}.>"),
    "runner cannot read the scheduler's inbox": (RUNNER_A, "_INBOX.scheduler.>"),
    "runner cannot read every inbox": (RUNNER_A, "_INBOX.>"),
    "runner cannot answer JetStream API requests": (RUNNER_A, "$JS.API.>"),
    "api cannot listen to reports": (API, subjects.REPORTS_ALL),
    "api cannot listen to everything": (API, ">"),
    "api cannot read the events service's inbox": (API, "_INBOX.events.>"),
    "scheduler cannot listen to commands": (SCHEDULER, subjects.COMMANDS_ALL),
    "runner cannot answer credentials requests": (RUNNER_A, subjects.CREDENTIALS_ALL),
    "events cannot answer credentials requests": (EVENTS, subjects.CREDENTIALS_ALL),
    "scheduler cannot read a runner's inbox": (SCHEDULER, f"_INBOX.{RUNNER_A}.>"),
    "events cannot listen to commands": (EVENTS, subjects.COMMANDS_ALL),
    "events cannot read the api's inbox": (EVENTS, "_INBOX.api.>"),
    "admin cannot listen to job events": (ADMIN, subjects.EVENTS_ALL),
    "admin cannot read the api's inbox": (ADMIN, "_INBOX.api.>"),
}


@pytest.mark.parametrize(("user", "subject"), REFUSED_PUBLISH.values(), ids=REFUSED_PUBLISH.keys())
async def test_publish_outside_the_role_is_refused(connect_as: ConnectAs, user: str, subject: str) -> None:
    await (await connect_as(user)).refused_publish(subject)


@pytest.mark.parametrize(("user", "subject"), REFUSED_SUBSCRIBE.values(), ids=REFUSED_SUBSCRIBE.keys())
async def test_subscribe_outside_the_role_is_refused(connect_as: ConnectAs, user: str, subject: str) -> None:
    await (await connect_as(user)).refused_subscribe(subject)


async def test_a_refused_request_gets_no_answer_only_a_timeout(connect_as: ConnectAs) -> None:
    """What a service sees when it asks for what its role may not do (ensure_streams turns it into a
    message that names the cause)."""
    runner = await connect_as(RUNNER_A)
    with pytest.raises(nats.errors.TimeoutError):
        await runner.js.delete_stream(DISPATCH)
    refused = f'nats: permissions violation for publish to "{js_api("STREAM.DELETE", DISPATCH)}"'
    assert runner.errors.get_nowait() == refused.lower()


@pytest.mark.parametrize(
    ("user", "password"),
    [("api", "not-the-password"), ("nobody", "whatever"), (None, None)],
    ids=["wrong password", "unknown user", "no credentials"],
)
async def test_only_known_users_with_their_password_connect(
    secured: SecuredNats, user: str | None, password: str | None
) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            secured.server.url, user=user, password=password, allow_reconnect=False, connect_timeout=2
        )
