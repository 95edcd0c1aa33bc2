"""One log set-up for every part: JSON lines with the job's and the current span's ids."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from telemetry.logs import JsonFormatter, TextFormatter


def record(message: str = "attempt %d started", **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("trainers.runner", logging.INFO, __file__, 1, message, (2,), None)
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_a_json_line_carries_the_job_and_its_extra_fields() -> None:
    line = json.loads(JsonFormatter("vtp-runner").format(record(job_id="j1", trace_id="ab" * 16, attempt=2)))
    assert line["message"] == "attempt 2 started"
    assert line["service"] == "vtp-runner"
    assert line["level"] == "info"
    assert (line["job_id"], line["trace_id"], line["attempt"]) == ("j1", "ab" * 16, 2)
    assert "span_id" not in line  # no span current


def test_the_current_span_gives_trace_and_span_ids() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("apply") as span:
        line = json.loads(JsonFormatter("vtp-scheduler").format(record(job_id="j1")))
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert not trace.get_current_span().get_span_context().is_valid


def test_an_exception_is_kept_and_the_text_form_reads_as_one_line_per_record() -> None:
    try:
        raise ValueError("bad spec")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: bad spec" in json.loads(JsonFormatter("vtp-api").format(failed))["exception"]
    text = TextFormatter("vtp-api").format(record(job_id="j1"))
    assert text.splitlines()[0].endswith("trainers.runner: attempt 2 started  job_id=j1")


@pytest.mark.parametrize("chosen", ["json", "text"])
def test_configure_follows_vtp_log_format(monkeypatch: pytest.MonkeyPatch, chosen: str) -> None:
    from telemetry import logs

    monkeypatch.setenv("VTP_LOG_FORMAT", chosen)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        logs.configure("vtp-pool", "debug")
        formatter = root.handlers[0].formatter
        assert type(formatter) is (JsonFormatter if chosen == "json" else TextFormatter)
        assert root.level == logging.DEBUG
        assert logging.getLogger("httpx").level == logging.WARNING  # signed URLs in its request lines
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
