"""The scheduler's spans: one per applied input, in the job's trace (docs/design.md, "Traces").

An input's span continues the context its message carried (`traceparent`: the api's submit or cancel, the
events service's report); a tick, which comes in no message, continues from the job's first span, found by
the job's trace id alone (`tracing.job_context`). The dispatch an input derives is rendered under its span,
so the runner's span continues it. With tracing off none of this is made: the dispatch still carries the
job's context (the trainer's `TRACEPARENT`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from services.scheduler.core import Decision, Tick
from services.scheduler.core.codec import input_kind
from telemetry import tracing

if TYPE_CHECKING:
    from services.scheduler.service import Delivery


def message_context(headers: Mapping[str, str] | None) -> Context | None:
    """The context a message carried, read only when spans are made."""
    return tracing.extract(headers) if tracing.enabled() else None


def start_input_spans(applied: Sequence[tuple[Delivery, Decision]]) -> list[Span | None]:
    """A span per decided input, started now, ended by `end_input_spans` once its batch is sent."""
    if not tracing.enabled():
        return [None] * len(applied)
    spans: list[Span | None] = []
    for delivery, decision in applied:
        command, job = delivery.command, decision.state
        trace_id = job.trace_id if job is not None else getattr(command, "trace_id", None)
        kind = input_kind(command)
        attributes: dict[str, str | int] = {
            "vtp.job_id": command.job_id,
            "vtp.input": kind,
            "vtp.outcome": "applied" if decision.applied else "rejected",
        }
        if job is not None:
            attributes["vtp.attempt"] = job.attempt
            attributes["vtp.state"] = job.state.value
        if decision.rejected_reason:
            attributes["vtp.rejected_reason"] = decision.rejected_reason[:500]
        if decision.events:
            attributes["vtp.events"] = ",".join(event.type.value for event in decision.events)
        parent = tracing.continue_job(delivery.context, trace_id)
        span_kind = SpanKind.INTERNAL if isinstance(command, Tick) else SpanKind.CONSUMER
        spans.append(tracing.start_span(f"apply {kind}", parent, attributes, span_kind))
    return spans


def contexts_of(spans: Sequence[Span | None]) -> list[Context | None]:
    """What each decision's messages are rendered under."""
    return [None if span is None else set_span_in_context(span, Context()) for span in spans]


def end_input_spans(spans: Sequence[Span | None], failure: BaseException | None = None) -> None:
    for span in spans:
        if span is None:
            continue
        if failure is not None:
            span.record_exception(failure)
            span.set_status(Status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}"[:300]))
        span.end()
