"""How a trainer runs and ends its attempt, whatever its framework: one `Result` (an exception becomes a
failure with its reason, retryable unless `trainers.failures` knows it will recur), the heartbeat stopped,
then `done`: the attempt's last word. SIGTERM preempts the attempt (trainers/preemption.py): training stops,
`stopped` saves what the grace allows and the result is `preempted`."""

from __future__ import annotations

import logging
import os
import shutil
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
from trainers.failures import classify
from trainers.heartbeat import Heartbeat
from trainers.output_barrier import WAIT_SECONDS, deliver_output
from trainers.preemption import Preemption, grace_from_environ
from trainers.resume import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    status: str  # succeeded, failed, cancelled or preempted
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    retryable: bool = True  # failed only: false when another attempt would fail the same way


def stopped(heartbeat: Heartbeat, progress: Progress | None, metrics: dict[str, Any] | None = None) -> Result:
    """The result of an attempt whose training stopped before its end (`progress`: its reports; None when
    it stopped before training). Cancelled: the job's own stop wins. Preempted: once the job's checkpoint
    holds the latest epoch completed, or the grace allows no more (`Progress.save_latest`)."""
    metrics = metrics or {}
    if not heartbeat.preempted:
        if progress is not None:
            progress.flush()
        return Result("cancelled", heartbeat.stop_reason, metrics)
    if progress is None:
        return Result("preempted", "preempted by SIGTERM before training started", metrics)
    saved = progress.save_latest(heartbeat.preempt_deadline or 0.0)
    return Result("preempted", preempted_reason(progress.completed, saved), metrics)


def preempted_reason(completed: int, saved: int | None) -> str:
    """`completed`: the latest epoch the job completed; `saved`: the one its checkpoint holds (None: none)."""
    if completed == 0:
        return "preempted by SIGTERM before the first epoch ended"
    reason = f"preempted by SIGTERM after epoch {completed}"
    if saved == completed:
        return reason
    then = "starts over" if saved is None else f"resumes after epoch {saved}"
    return f"{reason}; its checkpoint could not be saved within the grace, the job {then}"


def finish_attempt(
    client: CallbackClient,
    heartbeat: Heartbeat,
    attempt: Callable[[], Result],
    framework: str = "",
    preemption: Preemption | None = None,
) -> int:
    """Run `attempt` and report its result as `done`; the exit status: 1 when it failed (or could not be
    reported), 0 otherwise. Closes the heartbeat and the client. With `preemption` signalled, every wait here
    ends before its watchdog, and the watchdog's own report (the grace ran out) stands if it came first."""
    preemption = preemption or Preemption(heartbeat, lambda reason: None)
    try:
        try:
            result = attempt()
        except Exception as exc:
            failure = classify(exc, framework)
            log.exception("the attempt failed (%s)", "retryable" if failure.retryable else "not retryable")
            result = Result("failed", failure.reason, retryable=failure.retryable)
        if result.status == "cancelled" and heartbeat.preempted:
            # A trainer that knows only the stop flag (trainers/validation): SIGTERM stopped it.
            result = Result("preempted", "preempted by SIGTERM", result.metrics)
        # No heartbeat may follow `done`.
        heartbeat.close(preemption.bounded(heartbeat.close_timeout))
        # What it wrote until now reaches the job's logs before `done` ends the attempt.
        deliver_output(preemption.bounded(WAIT_SECONDS))
        status = 1 if result.status == "failed" else 0
        preemption.last_word(
            lambda: client.done(
                result.status, reason=result.reason, metrics=result.metrics, retryable=result.retryable
            ),
            status,
        )
    except CallbackError as exc:
        log.error("could not report the outcome: %s", exc)
        return 1
    finally:
        heartbeat.close(preemption.bounded(heartbeat.close_timeout))
        client.close()
    return status


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
            preemption = Preemption(
                heartbeat, lambda reason: client.done("preempted", reason=reason), grace_from_environ()
            ).install()

            work = Path(tempfile.mkdtemp(prefix=f"vtp-{name}-"))

            def attempt() -> Result:
                try:
                    env: TrainerEnv[SpecT] = TrainerEnv.from_environ(spec_model=spec_model)
                except ValidationError as exc:
                    log.error("%s", spec_problems(exc))
                    return Result("failed", spec_problems(exc), retryable=False)  # the same spec every time
                return run(env, client, heartbeat, work)

            try:
                status = finish_attempt(client, heartbeat, attempt, framework=name, preemption=preemption)
            finally:
                # After the report: a dataset's thousands of files are no part of a preemption's grace.
                shutil.rmtree(work, ignore_errors=True)
            if status != 0:
                span.set_status(StatusCode.ERROR, "the attempt failed")
    finally:
        tracing.shutdown()  # a trainer lives for one attempt: its spans go out before it exits
    if preemption.signalled:
        preemption.exit(status)  # now: nothing it left running (an upload past the grace) outlives its report
    return status


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
