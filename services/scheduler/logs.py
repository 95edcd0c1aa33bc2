"""Structured (JSON) logs with `job_id` and `trace_id` when a record carries them."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_FIELDS = ("job_id", "trace_id", "events", "input")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "service": "scheduler",
        }
        entry.update(
            {name: getattr(record, name) for name in _FIELDS if getattr(record, name, None) is not None}
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
