"""Traces: one per job, from its submit to its last report (docs/design.md, "Traces").

`configure(service_name, **attributes)` at a process's start installs the SDK's tracer provider only when the
standard variables ask for export: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
set, `OTEL_TRACES_EXPORTER` not `none`, `OTEL_SDK_DISABLED` not `true`. Otherwise the API's no-op provider
stays: a span costs a function call, and context still travels (a no-op span carries its parent's ids), so
headers, `TRACEPARENT` and log lines keep the job's trace id with tracing off. The SDK reads the rest itself
(`OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_RESOURCE_ATTRIBUTES`, ...). Only
OTLP over HTTP/protobuf is installed: `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` (or `http/json`) is refused with a
warning, and nothing is exported, rather than send protobuf to a port that speaks something else.

Context crosses NATS headers and HTTP callbacks through the global propagator (`inject`, `extract`). A part
that knows only a job's trace id (a tick-driven retry in the scheduler) continues from `job_context`: a
remote parent whose span id is derived from the trace id, `job_span_id`, which is the id the api gives the
job's first span (`job_root`, the submit's publish). So every span of a job reaches its root.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags

log = logging.getLogger(__name__)

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
# Paths no request span is made for: probes and scrapes, many a minute, of no job.
EXCLUDED_URLS = "/healthz,/readyz,/metrics"
SUPPORTED_PROTOCOL = "http/protobuf"

HeadersT = TypeVar("HeadersT", bound=MutableMapping[str, str])

_tracer = trace.get_tracer("vtp")
_provider: Any = None  # the SDK's TracerProvider, once `configure` installed one
# The trace id the next root span must take: see `job_root`.
_forced_trace: ContextVar[int | None] = ContextVar("vtp_forced_trace", default=None)
# A trace id just drawn for a root span, whose span id is drawn next (see `_job_ids`).
_new_trace: ContextVar[int | None] = ContextVar("vtp_new_trace", default=None)


# --- set-up ---------------------------------------------------------------------------------------


def export_requested(environ: Mapping[str, str]) -> bool:
    """Whether the standard variables ask for spans to be exported (and to an exporter installed here)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {name.strip() for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",")}
    if "none" in exporters or "otlp" not in exporters:
        return False
    if not (environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        return False
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or SUPPORTED_PROTOCOL
    )
    if protocol.strip().lower() != SUPPORTED_PROTOCOL:
        log.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s: only %s is installed; no spans are exported (point the endpoint "
            "at the collector's OTLP/HTTP port, 4318, with protocol %s)",
            protocol,
            SUPPORTED_PROTOCOL,
            SUPPORTED_PROTOCOL,
        )
        return False
    return True


def configure(service_name: str, **attributes: str) -> bool:
    """Trace this process as `service_name`, its resource also holding `attributes` (as `vtp.<name>`), when
    the environment asks for export; whether it does. Call once, at start; `shutdown()` before exit."""
    global _provider
    if _provider is not None or not export_requested(os.environ):
        return _provider is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {SERVICE_NAME: service_name, **{f"vtp.{name}": value for name, value in attributes.items()}}
    )
    provider = TracerProvider(resource=resource, id_generator=_job_ids())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    return True


def enabled() -> bool:
    """Whether spans are recorded and exported in this process."""
    return _provider is not None


def shutdown() -> None:
    """Export what is still buffered, then stop: short-lived processes (runner, trainer) call it before they
    exit. Nothing to do with tracing off."""
    if _provider is not None:
        _provider.shutdown()


def instrument_fastapi(app: Any) -> None:
    """Request spans for a FastAPI app (the caller's `traceparent` continued), probes and scrapes excepted,
    and no span per ASGI send or receive (an SSE stream would make one per event). Only when tracing is on:
    with the no-op provider the instrumentation still costs each request 100-170 us (docs/design.md)."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
        server_request_hook=_without_query,
    )


def _without_query(span: Span, scope: dict[str, Any]) -> None:
    """Signed storage URLs carry their signature in the query string: a span keeps the path only."""
    if not span.is_recording() or not scope.get("query_string"):
        return
    attributes = getattr(span, "attributes", None) or {}
    for name in ("http.url", "url.full"):
        if name in attributes:
            span.set_attribute(name, str(attributes[name]).split("?", 1)[0])
    if "url.query" in attributes:
        span.set_attribute("url.query", "")


# --- context across messages ----------------------------------------------------------------------


def inject(headers: HeadersT, context: Context | None = None) -> HeadersT:
    """Write the context (the current one by default) into message or request headers: `traceparent`."""
    propagate.inject(headers, context=context)
    return headers


def extract(headers: Mapping[str, str] | None) -> Context:
    """The context a message or request carried (an empty one without `traceparent`)."""
    return propagate.extract(headers or {})


def traceparent(context: Context | None = None) -> str | None:
    """The context as a W3C `traceparent` (`TRACEPARENT` for a trainer), or None when it holds no span."""
    return inject({}, context).get("traceparent")


def trace_id_of(context: Context | None = None) -> str | None:
    """The trace id (32 hex digits) of the context's span (the current one by default), or None."""
    span_context = trace.get_current_span(context).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def incoming(headers: Mapping[str, str]) -> Context:
    """A request's context: the current one when a request span continues the caller's (the FastAPI
    instrumentation), else what the caller sent in its headers."""
    if trace.get_current_span().get_span_context().is_valid:
        return otel_context.get_current()
    return extract(headers)


# --- a job's trace --------------------------------------------------------------------------------


def new_trace_id() -> str:
    """The trace id for a job submitted now: that of the request span when it opens a trace here (tracing on,
    the caller sent no `traceparent`), else a new one."""
    span = trace.get_current_span()
    span_context = span.get_span_context()
    if span_context.is_valid and span.is_recording() and getattr(span, "parent", True) is None:
        return format(span_context.trace_id, "032x")
    while (trace_id := secrets.token_hex(16)) == "0" * 32:
        pass
    return trace_id


def job_span_id(trace_id: str) -> int:
    """The span id of a job's first span, derived from its trace id. Every root span's id is derived so
    (`_job_ids`): a submit's request span that opens the job's trace is the job's first span itself."""
    return int.from_bytes(hashlib.sha256(bytes.fromhex(trace_id)).digest()[:8], "big") or 1


def job_context(trace_id: str | None) -> Context:
    """A remote parent for a part that knows only the job's trace id: its first span (`job_root`). An empty
    context (a new root) for a trace id that is not one."""
    if not trace_id or not _TRACE_ID.match(trace_id) or trace_id == "0" * 32:
        return Context()
    span_context = SpanContext(
        int(trace_id, 16), job_span_id(trace_id), is_remote=True, trace_flags=_root_flags(trace_id)
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context), Context())


def continue_job(context: Context | None, trace_id: str | None) -> Context:
    """The parent of a job's span: the context its message carried when that is of the job's trace, else the
    job's first span (`job_context`)."""
    if context is not None and trace_id is not None and trace_id_of(context) == trace_id:
        return context
    return job_context(trace_id)


@contextmanager
def job_root(name: str, trace_id: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """The job's first span, with the span id every part derives (`job_span_id`): the request span itself
    when it opened the job's trace, else a span `name` (its submit's publish), the root of the job's own
    trace (an `Idempotency-Key` derives it, or the caller sent a `traceparent`), linked to the request's."""
    if _provider is None or not _TRACE_ID.match(trace_id):
        yield trace.INVALID_SPAN
        return
    request_span = trace.get_current_span()
    current = request_span.get_span_context()
    tid = int(trace_id, 16)
    if current.trace_id == tid and current.span_id == job_span_id(trace_id) and request_span.is_recording():
        # A root span, so its id is the derived one already: one span less to make and export per submit.
        request_span.set_attributes(dict(attributes or {}))
        yield request_span
        return
    token = _forced_trace.set(tid)
    try:
        span = _tracer.start_span(name, Context(), SpanKind.PRODUCER, dict(attributes or {}), link_to())
    finally:
        _forced_trace.reset(token)
    with trace.use_span(span, end_on_exit=True):
        yield span


@contextmanager
def span(
    name: str,
    context: Context | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    links: list[Link] | None = None,
) -> Iterator[Span]:
    """A span made current for the block: a child of `context` (the current one by default)."""
    with _tracer.start_as_current_span(
        name, context, kind, dict(attributes) if attributes else None, links
    ) as current:
        yield current


def start_span(
    name: str,
    context: Context | None = None,
    attributes: Mapping[str, Any] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Span:
    """A span the caller ends (`span.end()`), not made current."""
    return _tracer.start_span(name, context, kind, dict(attributes) if attributes else None)


def link_to(context: Context | None = None) -> list[Link]:
    """A link to the context's span (the current one by default), when it has one."""
    span_context = trace.get_current_span(context).get_span_context()
    return [Link(span_context)] if span_context.is_valid else []


def _root_flags(trace_id: str) -> TraceFlags:
    """Sampled, unless the configured sampler would drop a trace of this id at its root (a ratio sampler
    decides by the trace id alone: the same answer the api got at the job's submit)."""
    if _provider is None:
        return TraceFlags(TraceFlags.SAMPLED)
    result = _provider.sampler.should_sample(None, int(trace_id, 16), "job")
    return TraceFlags(TraceFlags.SAMPLED if result.decision.is_sampled() else TraceFlags.DEFAULT)


def _job_ids() -> Any:
    """Random ids, but a root span's id is derived from its trace id (`job_span_id`), and the root `job_root`
    starts takes the trace id it set. The SDK draws a new trace's id just before its root span's id, in
    the same call, so the trace id drawn last is the one the next span id is for. (Made on demand: the
    SDK is imported only when tracing is on, sparing a runner's start-up the import.)"""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class JobIds(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            forced = _forced_trace.get()
            trace_id = forced if forced is not None else super().generate_trace_id()
            _new_trace.set(trace_id)
            return trace_id

        def generate_span_id(self) -> int:
            new_trace = _new_trace.get()
            if new_trace is None:
                return super().generate_span_id()
            _new_trace.set(None)
            return job_span_id(format(new_trace, "032x"))

    return JobIds()
