"""What turns tracing on (the standard OTEL_* variables only), the job's derived context, and which OTEL_*
variables reach a runner and a trainer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span

from telemetry import tracing
from trainers.pool import pool_environ
from trainers.runner import passed_to_trainer

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    ("environ", "exported"),
    [
        ({}, False),
        (ENDPOINT, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, True),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, False),
    ],
)
def test_export_only_when_the_standard_variables_ask(environ: dict[str, str], exported: bool) -> None:
    assert tracing.export_requested(environ) is exported


def test_grpc_is_refused_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert not tracing.export_requested({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert "only http/protobuf is installed" in caplog.text


def test_the_job_context_is_the_same_wherever_it_is_made() -> None:
    """Tracing off here: the context still travels, pointing at the job's first span."""
    assert not tracing.enabled()
    headers = tracing.inject({}, tracing.job_context(TRACE_ID))
    assert headers["traceparent"] == f"00-{TRACE_ID}-{tracing.job_span_id(TRACE_ID):016x}-01"
    assert tracing.trace_id_of(tracing.extract(headers)) == TRACE_ID
    # A message of the job's trace is continued as it came; one of another (or none) from the job's span.
    other = tracing.extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    assert tracing.traceparent(tracing.continue_job(other, TRACE_ID)) == headers["traceparent"]
    assert tracing.traceparent(tracing.continue_job(None, TRACE_ID)) == headers["traceparent"]
    came = tracing.extract({"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"})
    assert tracing.traceparent(tracing.continue_job(came, TRACE_ID)).endswith("-b7ad6b7169203331-01")
    # No span of a trace id that is not one.
    assert tracing.traceparent(tracing.job_context("not-a-trace-id")) is None


def test_a_trainer_gets_the_otel_settings_but_not_the_collectors_credentials() -> None:
    assert passed_to_trainer("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert passed_to_trainer("OTEL_TRACES_SAMPLER")
    assert not passed_to_trainer("OTEL_EXPORTER_OTLP_HEADERS")
    assert not passed_to_trainer("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
    assert not passed_to_trainer("OTEL_EXPORTER_OTLP_CLIENT_KEY")


def test_the_pool_and_its_runners_get_every_otel_setting() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer x",
        **ENDPOINT,
        "DATABASE_URL": "postgresql://",
    }
    assert pool_environ(environ) == {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer x", **ENDPOINT}


@pytest.fixture
def tracer_here(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The SDK with this module's id rules, for this test only (the global provider stays the no-op one)."""
    provider = TracerProvider(id_generator=tracing._job_ids())
    monkeypatch.setattr(tracing, "_provider", provider)
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("vtp"))
    yield
    provider.shutdown()


def ids(span: Span) -> tuple[str, int]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), context.span_id


def test_a_root_spans_id_is_derived_from_its_trace_id_and_no_other_spans_is(tracer_here: None) -> None:
    with tracing.span("POST /v1/jobs") as request:
        trace_id, span_id = ids(request)
        assert span_id == tracing.job_span_id(trace_id)
        with tracing.span("child") as child:
            assert ids(child) != (trace_id, span_id)
            assert ids(child)[0] == trace_id
        # The request opened the job's trace: it is the job's first span, no second one is made.
        with tracing.job_root("publish submit", trace_id, {"vtp.job_id": "j1"}) as first:
            assert first is request


def test_a_keyed_jobs_first_span_is_the_root_of_its_own_trace(tracer_here: None) -> None:
    with tracing.span("POST /v1/jobs") as request:
        with tracing.job_root("publish submit", TRACE_ID) as first:
            assert ids(first) == (TRACE_ID, tracing.job_span_id(TRACE_ID))
            assert first.parent is None
            assert [link.context for link in first.links] == [request.get_span_context()]
            # Spans after it draw their ids again, however the job's root was made.
            with tracing.span("publish") as child:
                assert ids(child)[1] != tracing.job_span_id(TRACE_ID)
        with tracing.span("later") as later:
            assert ids(later)[1] not in (tracing.job_span_id(TRACE_ID), ids(request)[1])
