"""One log set-up for every part: JSON lines (one object per record), or readable lines on a terminal.

A record about a job carries `job_id` (passed as `extra={"job_id": ...}`) and `trace_id` / `span_id`: from
the span current when it was logged, else from the record's own `trace_id` extra (a job's trace id known
without a span, as when tracing is off). Every other `extra` field is kept too. `VTP_LOG_FORMAT=json|text`
overrides the choice by terminal; `VTP_LOG_LEVEL` (or the `level` given) sets the level.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

# What every LogRecord has: anything else on a record came as `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
# Libraries that log a request's full URL: signed storage URLs carry their signature in the query string.
_QUIETED = ("httpx", "httpcore")


def record_fields(record: logging.LogRecord, service: str) -> dict[str, Any]:
    """The record as the fields of one JSON log line."""
    entry: dict[str, Any] = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "service": service,
        "logger": record.name,
        "message": record.getMessage(),
    }
    entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and v is not None})
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        entry["trace_id"] = format(context.trace_id, "032x")
        entry["span_id"] = format(context.span_id, "016x")
    if record.exc_info:
        entry["exception"] = logging.Formatter().formatException(record.exc_info)
    return entry


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_fields(record, self.service), default=str)


class TextFormatter(JsonFormatter):
    """For a person at a terminal: time, level, logger and message, then the job's fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        entry = record_fields(record, self.service)
        head = [entry.pop(k) for k in ("time", "level", "logger", "message")]
        entry.pop("service")
        exception = entry.pop("exception", None)
        line = f"{head[0][11:23]} {head[1].upper():7} {head[2]}: {head[3]}"
        if entry:
            line += "  " + " ".join(f"{k}={v}" for k, v in entry.items())
        return f"{line}\n{exception}" if exception else line


def configure(service: str, level: str | None = None) -> None:
    """Log every record of this process as `service` (the part's OpenTelemetry service name)."""
    chosen = os.environ.get("VTP_LOG_FORMAT") or ("text" if sys.stderr.isatty() else "json")
    handler = logging.StreamHandler()
    handler.setFormatter(TextFormatter(service) if chosen == "text" else JsonFormatter(service))
    logging.basicConfig(
        level=(level or os.environ.get("VTP_LOG_LEVEL") or "INFO").upper(), handlers=[handler], force=True
    )
    for name in _QUIETED:
        logging.getLogger(name).setLevel(logging.WARNING)
