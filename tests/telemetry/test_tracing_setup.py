"""What turns tracing on (the standard OTEL_* variables only), the job's derived context, and which OTEL_*
variables reach a runner and a trainer."""

from __future__ import annotations

import pytest

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
