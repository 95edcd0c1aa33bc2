"""How a trainer runs and ends its attempt, whatever its framework: one `Result` (an exception becomes a
failure with its reason), the heartbeat stopped, then `done`: the attempt's last word."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.trace import StatusCode
from pydantic import ValidationError

from telemetry import logs, tracing
from trainers.callbacks import CallbackClient, CallbackError
from trainers.env import TrainerEnv
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


SpecT = TypeVar("SpecT")
Run = Callable[[TrainerEnv[SpecT], CallbackClient, Heartbeat, Path], Result]


def run_trainer(name: str, spec_model: type[SpecT], run: Run[SpecT]) -> int:
    """A trainer process (`python -m trainers.<name>`): heartbeat from the start, `run` in a work folder of
    its own, the result reported as `done` (see `finish_attempt`); the exit status. A spec this trainer
    cannot run fails the attempt with a reason naming each bad field."""
    logs.configure("vtp-trainer")
    tracing.configure("vtp-trainer", framework=name)
    try:
        # The trainer's span continues the runner's (`TRACEPARENT`); every callback carries it or a child.
        with tracing.span(
            "train", tracing.extract({"traceparent": os.environ.get("TRACEPARENT", "")})
        ) as span:
            span.set_attributes(_span_attributes(name))
            # From the environment directly: the callback URL and token are needed to report a spec refused.
            client = CallbackClient(os.environ["VTP_CALLBACK_URL"], os.environ["VTP_CALLBACK_TOKEN"])
            heartbeat = Heartbeat(client, float(os.environ.get("VTP_HEARTBEAT_INTERVAL", "5"))).start()

            def attempt() -> Result:
                try:
                    env: TrainerEnv[SpecT] = TrainerEnv.from_environ(spec_model=spec_model)
                except ValidationError as exc:
                    log.error("%s", spec_problems(exc))
                    return Result("failed", spec_problems(exc))
                with tempfile.TemporaryDirectory(prefix=f"vtp-{name}-") as work:
                    return run(env, client, heartbeat, Path(work))

            status = finish_attempt(client, heartbeat, attempt)
            if status != 0:
                span.set_status(StatusCode.ERROR, "the attempt failed")
            return status
    finally:
        tracing.shutdown()  # a trainer lives for one attempt: its spans go out before it exits


def _span_attributes(framework: str) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        "vtp.framework": framework,
        "vtp.job_id": os.environ.get("VTP_JOB_ID", ""),
    }
    if os.environ.get("VTP_ATTEMPT", "").isdigit():
        attributes["vtp.attempt"] = int(os.environ["VTP_ATTEMPT"])
    return attributes


def spec_problems(exc: ValidationError) -> str:
    """One line per problem, each naming its field: the reason a refused spec fails the job with."""
    lines = [f"{'.'.join(str(part) for part in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()]
    return "invalid job spec: " + "; ".join(lines)
