"""Turns decisions into messages, and sends messages: events on VTP_EVENTS, dispatches on the pools' subjects.

Rendering and sending are two steps because the outbox (services/scheduler/outbox.py) stores what a decision
owes the stream in the decision's own transaction and sends it only after the commit. Every message carries a
deterministic `Nats-Msg-Id` (`<job_id>:<version>` for events, `<job_id>:<attempt>` for dispatch, with `:<run>`
after a preemption), so sending the same message again after a crash stores nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from contracts import subjects
from contracts.dispatch import DispatchJob, run_id
from messaging.nats import ensure_pool_consumer
from services.scheduler.core import Decision, Dispatch, Job
from services.scheduler.credentials import Issuer
from telemetry import tracing

PUBLISH_TIMEOUT_SECONDS = 5.0
MSG_ID_HEADER = "Nats-Msg-Id"


@dataclass(frozen=True)
class Outgoing:
    """One message a decision owes a stream; `outbox_id` once it is written to the outbox."""

    job_id: str
    stream: str
    subject: str
    headers: dict[str, str]
    payload: bytes
    outbox_id: int | None = None

    @property
    def msg_id(self) -> str:
        return self.headers[MSG_ID_HEADER]


class Publisher:
    def __init__(self, js: JetStreamContext, issuer: Issuer, events_url: str) -> None:
        self._js = js
        self._issuer = issuer
        self._callback_url = f"{events_url.rstrip('/')}/v1/callbacks"
        self._pools: set[str] = set()

    async def render(
        self, decisions: Sequence[Decision], contexts: Sequence[Context | None] | None = None
    ) -> list[Outgoing]:
        """Each decision's events in version order, then its dispatches (a dispatch's pool consumer is made
        sure of first: KEDA and the local pool watch it, so it must exist before its first message). A
        dispatch carries the trace context of its decision's input (`contexts`, one per decision), or the
        job's own (`tracing.job_context`)."""
        messages: list[Outgoing] = []
        for index, decision in enumerate(decisions):
            context = contexts[index] if contexts is not None else None
            for event in decision.events:
                messages.append(
                    Outgoing(
                        job_id=event.job_id,
                        stream=subjects.EVENTS_STREAM,
                        subject=subjects.event_subject(event.job_id, event.type),
                        headers={MSG_ID_HEADER: f"{event.job_id}:{event.version}"},
                        payload=event.model_dump_json().encode(),
                    )
                )
            for effect in decision.effects:
                assert decision.state is not None
                messages.append(await self._dispatch(decision.state, effect, context))
        return messages

    async def send(self, messages: Sequence[Outgoing]) -> None:
        """Publish in order; return once every PubAck arrived (raise when one did not)."""
        if not messages:
            return
        pending: list[asyncio.Future] = [
            await self._js.publish_async(
                message.subject, message.payload, stream=message.stream, headers=message.headers
            )
            for message in messages
        ]
        # publish_async keeps publish order on the wire, so the stream stores events in version order.
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            await asyncio.gather(*pending)

    async def event_stored(self, message: Outgoing) -> bool:
        """Whether VTP_EVENTS already holds this event: the last event on its subject is this version or a
        later one. For a message older than the stream's duplicate window, which JetStream no longer
        recognises by its id."""
        try:
            last = await self._js.get_last_msg(message.stream, message.subject)
        except NotFoundError:
            return False
        stored_id = (last.headers or {}).get(MSG_ID_HEADER, "")
        return _version(stored_id) >= _version(message.msg_id)

    async def _dispatch(self, job: Job, effect: Dispatch, context: Context | None) -> Outgoing:
        if effect.pool not in self._pools:
            await ensure_pool_consumer(self._js, effect.pool)
            self._pools.add(effect.pool)
        headers = {MSG_ID_HEADER: run_id(effect.job_id, effect.attempt, effect.run)}
        # The message's own span, under the input's: the runner continues it. Stored with the message in the
        # outbox, so a relayed copy carries the same context.
        attributes = {"vtp.job_id": effect.job_id, "vtp.attempt": effect.attempt, "vtp.pool": effect.pool}
        parent = context if context is not None else tracing.job_context(job.trace_id)
        with tracing.span("dispatch", parent, SpanKind.PRODUCER, attributes):
            tracing.inject(headers)
        now = datetime.now(UTC)
        urls = self._issuer.urls(job, effect.attempt, effect.run)
        message = DispatchJob(
            job_id=effect.job_id,
            attempt=effect.attempt,
            pool=effect.pool,
            spec=job.spec,
            callback_url=self._callback_url,
            callback_token=self._issuer.token(effect.job_id, effect.attempt, now, effect.run),
            dataset_url=urls.dataset_url,
            dataset_format=job.dataset.format,
            resume_url=urls.resume_url,
            weights_url=urls.weights_url,
            trace_id=job.trace_id,
            traceparent=headers.get("traceparent"),  # the header's, for runners that read the body
            expires_at=self._issuer.expiry(now),
        )
        return Outgoing(
            job_id=effect.job_id,
            stream=subjects.DISPATCH_STREAM,
            subject=subjects.dispatch_subject(effect.pool),
            headers=headers,
            payload=message.model_dump_json().encode(),
        )


def _version(msg_id: str) -> int:
    """The version in an event's `<job_id>:<version>` message id (-1 when there is none)."""
    _, _, version = msg_id.rpartition(":")
    return int(version) if version.isascii() and version.isdigit() else -1
