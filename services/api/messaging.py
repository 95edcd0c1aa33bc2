"""Commands out to NATS: publish, and return only once JetStream has stored the message (PubAck)."""

from __future__ import annotations

import secrets

import nats.errors
from nats.js import JetStreamContext
from pydantic import BaseModel

from contracts import subjects
from contracts.commands import CancelJob, SubmitJob
from services.api.errors import Unavailable

PUBLISH_TIMEOUT = 5.0


def traceparent(trace_id: str) -> str:
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


class NatsCommandPublisher:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def submit(self, command: SubmitJob) -> None:
        # Nats-Msg-Id = job_id: a retried publish inside the duplicate window is stored once.
        await self._publish(subjects.SUBMIT_JOB, command, command.job_id, command.trace_id)

    async def cancel(self, command: CancelJob) -> None:
        await self._publish(subjects.CANCEL_JOB, command, f"{command.job_id}:cancel", command.trace_id)

    async def _publish(self, subject: str, command: BaseModel, msg_id: str, trace_id: str) -> None:
        headers = {"Nats-Msg-Id": msg_id, "traceparent": traceparent(trace_id)}
        try:
            await self._js.publish(
                subject,
                command.model_dump_json().encode(),
                stream=subjects.COMMANDS_STREAM,
                headers=headers,
                timeout=PUBLISH_TIMEOUT,
            )
        except (TimeoutError, nats.errors.Error) as exc:
            raise Unavailable("the command bus did not accept the command; retry later", str(exc)) from exc
