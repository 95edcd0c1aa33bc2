"""NATS transport: turn messages into inputs, apply them, and settle every message explicitly.

- applied or rejected (recorded), or a redelivery of an input already recorded: ack, after the commit;
- transient failure (database, NATS) or a report that overtook its job's submit: nak with a delay;
- a message that cannot be parsed: recorded as refused (when it names a job), logged, and terminated
  (redelivery cannot help); so is one that failed `MAX_DELIVERIES` times (a bug, not an outage). An input the
  database cannot store is recorded as refused by the service and acked.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence

from nats.aio.msg import Msg
from pydantic import ValidationError

from contracts import subjects
from contracts.commands import CancelJob, SubmitJob
from contracts.reports import REPORT_KINDS
from services.scheduler import traced
from services.scheduler.core import Input
from services.scheduler.errors import UnreadableMessage
from services.scheduler.service import Delivery, SchedulerService

log = logging.getLogger(__name__)

MAX_NAK_DELAY_SECONDS = 30.0
MAX_DELIVERIES = 50

Parser = Callable[[Msg], Input]


def parse_command(msg: Msg) -> Input:
    try:
        if msg.subject == subjects.SUBMIT_JOB:
            return SubmitJob.model_validate_json(msg.data)
        if msg.subject == subjects.CANCEL_JOB:
            return CancelJob.model_validate_json(msg.data)
    except ValidationError as exc:
        raise UnreadableMessage(str(exc)) from exc
    raise UnreadableMessage(f"unknown command subject {msg.subject}")


def parse_report(msg: Msg) -> Input:
    kind = msg.subject.rsplit(".", 1)[-1]
    model = REPORT_KINDS.get(kind)
    if model is None:
        raise UnreadableMessage(f"unknown report subject {msg.subject}")
    try:
        return model.model_validate_json(msg.data)  # type: ignore[return-value]
    except ValidationError as exc:
        raise UnreadableMessage(str(exc)) from exc


def report_key(msg: Msg) -> str | None:
    """What orders reports (messaging.group_commit): their job."""
    return subjects.report_job(msg.subject)


def failure_delay(deliveries: int) -> float:
    return min(0.1 * 2 ** min(deliveries, 10), MAX_NAK_DELAY_SECONDS)


class Handler:
    """Handles a batch of messages from one consumer in one transaction."""

    def __init__(self, service: SchedulerService, parse: Parser) -> None:
        self._service = service
        self._parse = parse

    async def __call__(self, messages: Sequence[Msg]) -> None:
        readable: list[tuple[Msg, Delivery]] = []
        for msg in messages:
            meta = msg.metadata
            source = f"{meta.stream}:{meta.sequence.stream}"
            try:
                command = self._parse(msg)
            except UnreadableMessage as exc:
                await self._give_up(msg, source, f"unreadable message: {exc}")
                continue
            context = traced.message_context(msg.headers)
            readable.append((msg, Delivery(command, meta.num_delivered, source, context)))
        if not readable:
            return
        try:
            outcomes = await self._service.apply_batch([delivery for _, delivery in readable])
        except Exception as exc:
            await asyncio.gather(*(self._failed(msg, delivery, exc) for msg, delivery in readable))
            return
        settle = []
        for (msg, delivery), outcome in zip(readable, outcomes, strict=True):
            if outcome.retry_in is None:
                settle.append(msg.ack())
            else:
                log.info("input deferred: job not known yet", extra=_extra(delivery))
                settle.append(msg.nak(delay=outcome.retry_in))
        await asyncio.gather(*settle)

    async def _give_up(self, msg: Msg, source: str, reason: str) -> None:
        """Record a message that can never be applied as refused (when it names a job), then terminate it.
        When even the record fails, it comes again: nothing is dropped unrecorded while recording works."""
        job_id = _job_id(msg)
        if job_id is not None:
            kind = msg.subject.rsplit(".", 1)[-1]
            body = {"subject": msg.subject, "data": msg.data[:2000].decode("utf-8", "replace")}
            try:
                await self._service.refuse(job_id, source, f"refused.{kind}"[:32], body, reason[:2000])
            except Exception:
                log.warning("could not record a refused input, retrying", exc_info=True)
                await msg.nak(delay=failure_delay(msg.metadata.num_delivered))
                return
        log.error("message on %s terminated: %s", msg.subject, reason[:2000])
        await msg.term()

    async def _failed(self, msg: Msg, delivery: Delivery, exc: Exception) -> None:
        if delivery.deliveries >= MAX_DELIVERIES:
            log.error("input failed %d times", delivery.deliveries, extra=_extra(delivery), exc_info=exc)
            source = delivery.source or ""
            await self._give_up(msg, source, f"failed {delivery.deliveries} times: {exc}")
            return
        delay = failure_delay(delivery.deliveries)
        log.warning(
            "input failed (delivery %d), retrying in %.1f s",
            delivery.deliveries,
            delay,
            extra=_extra(delivery),
            exc_info=exc,
        )
        await msg.nak(delay=delay)


def _extra(delivery: Delivery) -> dict[str, str | None]:
    return {"job_id": delivery.command.job_id, "trace_id": getattr(delivery.command, "trace_id", None)}


def _job_id(msg: Msg) -> str | None:
    """The job a message names: in a report's subject, or in a command's body when that is JSON at all."""
    parts = msg.subject.split(".")
    if msg.subject.startswith(f"{subjects.PREFIX}.report.") and len(parts) == 5:
        return parts[3][:64]
    try:
        job_id = json.loads(msg.data).get("job_id")
    except (ValueError, AttributeError):
        return None
    return job_id[:64] if isinstance(job_id, str) and job_id else None
