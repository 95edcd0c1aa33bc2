"""How a trainer ends its attempt, whatever its framework: one `Result` (an exception becomes a failure with
its reason), the heartbeat stopped, then `done`: the attempt's last word."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainers.callbacks import CallbackClient, CallbackError
from trainers.heartbeat import Heartbeat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    status: str  # succeeded, failed or cancelled
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def finish_attempt(client: CallbackClient, heartbeat: Heartbeat, attempt: Callable[[], Result]) -> int:
    """Run `attempt` and report its result as `done`; the exit status: 1 when it failed (or could not be
    reported), 0 otherwise. Closes the heartbeat and the client."""
    try:
        try:
            result = attempt()
        except Exception as exc:
            log.exception("the attempt failed")
            result = Result("failed", f"{type(exc).__name__}: {exc}")
        # No heartbeat may follow `done`.
        heartbeat.close()
        client.done(result.status, reason=result.reason, metrics=result.metrics)
    except CallbackError as exc:
        log.error("could not report the outcome: %s", exc)
        return 1
    finally:
        heartbeat.close()
        client.close()
    return 1 if result.status == "failed" else 0
