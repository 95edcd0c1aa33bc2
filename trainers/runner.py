"""`python -m trainers.runner`: run exactly one job of a pool.

Take one message from the pool's durable consumer (nothing there: exit 0), ask the events service whether
the job should still run (stop: ack and exit), start `python -m trainers.<framework>` with the trainer
environment only (no NATS, database or storage credentials), keep the message alive with `in_progress()`,
report `done(failed)` if the trainer exits non-zero or cannot be started, then ack. SIGTERM is forwarded
to the trainer. The trainer's stdout and stderr are captured and sent to the job as log lines
(trainers/output.py); a trainer that exits without a word fails with its last lines of stderr (`exit_reason`).

The message comes through a FastStream pull subscriber (`messaging.broker`) bound to the consumer the admin
made (`contracts.streams.pool_consumer`, by `vtp up` or `vtp pools prepare`): a runner creates no stream or
consumer. It takes one message with `get_one` (one pull request, batch of 1) rather than a consume loop,
which would ask for the next message as soon as the handler returned: a second job held by a runner that
is about to exit.

What a runner holds stays with it (trainers/isolation.py): its NATS credentials come from
`VTP_NATS_CREDENTIALS` (stdin, a file or a mounted Secret), the trainer gets an environment of its job's
variables and a few harmless settings, runs as another user when the runner is root (`VTP_TRAINER_USER`),
in a private work folder, and the runner is not dumpable.

Ack semantics (ack policy MANUAL: `settle` decides every outcome itself):
- success, or a failed trainer (reported `done(failed)`; the scheduler retries attempts, not the dispatch),
  or a trainer that could not be started (reported the same way): ack, once the job has ended;
- the job should not run (heartbeat says stop), or its callback is refused (4xx): ack;
- the events service cannot be reached before the start (transient): nak with a delay, for a later runner;
- a message that does not parse (permanent): terminated and logged, never redelivered.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # A runner starts once per job, before its trainer: its start-up is every job's wait. nats-py imports
    # aiohttp (for ws:// URLs; runners connect over nats:// or tls://) and httpx its command line (rich,
    # click) whenever those are installed: about 0.3 s of each job's start, kept out of this process.
    for _unused in ("aiohttp", "rich", "click"):
        sys.modules.setdefault(_unused, None)

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsMessage
from faststream.nats.subscriber import PullStreamSubscriber
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import ValidationError

from contracts import subjects
from contracts.dispatch import DispatchJob
from messaging.broker import make_broker, pull_inbox
from messaging.credentials import NatsCredentials
from telemetry import logs, tracing
from trainers import isolation, takeover
from trainers.callbacks import CallbackClient, CallbackError
from trainers.env import TrainerEnv
from trainers.lifetime import dies_with_parent
from trainers.output import OutputCapture
from trainers.output_batch import OutputLimits
from trainers.output_text import Redactor

log = logging.getLogger("trainers.runner")

IN_PROGRESS_EVERY = 15.0
FETCH_TIMEOUT = 2.0
NAK_DELAY = 10.0
OUTPUT_LIMITS = OutputLimits()  # batches, rate limit and caps of a trainer's output (output_batch.py)
# What the trainer inherits from the runner's environment; everything else (NATS_URL, NATS_PASSWORD,
# DATABASE_URL, storage keys, cloud credentials...) stays behind, and so does any variable whose name says
# it holds a secret (HF_TOKEN, say).
PASSTHROUGH = ("PATH", "HOME", "LANG", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH")
PASSTHROUGH_PREFIXES = (
    "LC_", "CUDA_", "NVIDIA_", "HF_", "TORCH_", "OMP_", "MKL_", "YOLO_", "VTP_LOG_", "VTP_CHECKPOINT_",
    "VTP_PREEMPT_", "OTEL_",
)  # fmt: skip
# HEADERS: `OTEL_EXPORTER_OTLP_HEADERS` may hold a collector's credentials (the runner gets them, no trainer).
SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "KEY", "CREDENTIAL", "AUTH", "HEADERS")
# What a runner reads besides the trainer's variables: all the local pool hands it (trainers/pool.py).
RUNNER_VARIABLES = (
    "NATS_URL", "VTP_POOL", "VTP_HEARTBEAT_INTERVAL", "VTP_RUNNER_FETCH_TIMEOUT", "VTP_TRAINER_USER",
    "VTP_LOG_LEVEL", "TMPDIR",
)  # fmt: skip


@dataclass(frozen=True)
class RunnerSettings:
    nats_url: str
    pool: str
    heartbeat_interval: float
    fetch_timeout: float = FETCH_TIMEOUT
    credentials: NatsCredentials | None = None
    trainer_user: isolation.TrainerUser | None = None

    @classmethod
    def from_environ(cls) -> RunnerSettings:
        """Reads the NATS credentials (from stdin, when `VTP_NATS_CREDENTIALS` is `-`)."""
        return cls(
            nats_url=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
            pool=os.environ.get("VTP_POOL", "local"),
            heartbeat_interval=float(os.environ.get("VTP_HEARTBEAT_INTERVAL", "5")),
            fetch_timeout=float(os.environ.get("VTP_RUNNER_FETCH_TIMEOUT", str(FETCH_TIMEOUT))),
            credentials=isolation.read_credentials(),
            trainer_user=isolation.trainer_user(),
        )


def passed_to_trainer(name: str) -> bool:
    passed = name in PASSTHROUGH or name.startswith(PASSTHROUGH_PREFIXES)
    return passed and not any(word in name for word in SECRET_WORDS)


def trainer_environ(
    env: TrainerEnv,
    parent: dict[str, str] | None = None,
    work_dir: Path | None = None,
    user: isolation.TrainerUser | None = None,
) -> dict[str, str]:
    """The trainer's whole environment: its job's variables (the trainer API contract), the settings of
    `PASSTHROUGH`, and its work folder as TMPDIR (and HOME, when it runs as a user of its own)."""
    parent = dict(os.environ) if parent is None else parent
    child = {k: v for k, v in parent.items() if passed_to_trainer(k)}
    child.setdefault("HF_HUB_OFFLINE", "1")
    child["PYTHONUNBUFFERED"] = "1"
    if work_dir is not None:
        child["TMPDIR"] = str(work_dir)
    if user is not None and user.switches:
        # Its runner's HOME is root's, which it cannot read; USER and LOGNAME spare getpass a passwd lookup.
        child.update(HOME=str(work_dir or "/"), USER=user.name, LOGNAME=user.name)
    child.update(env.to_environ())
    return child


# Signals that come from outside (a cancel, an eviction, the OOM killer): what the trainer last wrote says
# nothing of why it ended. Any other death (a code, SIGSEGV, SIGABRT) ends its reason with its stderr.
OUTSIDE_SIGNALS = frozenset({signal.SIGTERM, signal.SIGKILL, signal.SIGINT})


def exit_reason(returncode: int, stderr_tail: Sequence[str] = ()) -> str:
    """Why an attempt failed when its trainer exited without a word: its exit status, and then the last
    lines of its stderr (`trainers.output.tail_of`: a few lines, a couple of thousand characters)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        reason = f"trainer exited with signal {name}"
        if -returncode in OUTSIDE_SIGNALS:
            return reason
    else:
        reason = f"trainer exited with code {returncode}"
    if not stderr_tail:
        return reason
    return f"{reason}; the last lines of its stderr:\n" + "\n".join(stderr_tail)


async def _keep_alive(msg: NatsMessage) -> None:
    while True:
        await asyncio.sleep(IN_PROGRESS_EVERY)
        try:
            await msg.in_progress()
        except Exception as exc:  # a NATS hiccup must not kill the run; the next tick tries again
            log.warning("in_progress failed: %s", exc)


async def settle(msg: NatsMessage, settings: RunnerSettings, broker: NatsBroker) -> int:
    """The handler: run the job one dispatch message holds, and settle the message (the module's ack
    semantics). Returns the runner's exit status."""
    try:
        job = DispatchJob.model_validate_json(msg.body)
    except ValidationError as exc:
        log.error("terminating an unparseable dispatch message: %s", exc.errors()[:1])
        await msg.reject()  # term: no runner could ever run it
        return 1
    return await run_job(msg, job, settings, broker)


async def run_job(msg: NatsMessage, job: DispatchJob, settings: RunnerSettings, broker: NatsBroker) -> int:
    """The attempt's span continues the dispatch's (its message's `traceparent`), linked to the pool's span
    that started this runner; the trainer continues it (`TRACEPARENT`)."""
    attributes = {
        "vtp.job_id": job.job_id,
        "vtp.attempt": job.attempt,
        "vtp.pool": job.pool,
        "vtp.framework": job.spec.framework,
    }
    parent = tracing.continue_job(tracing.extract(msg.headers), job.trace_id)
    started_by = tracing.link_to(tracing.extract({"traceparent": os.environ.get("TRACEPARENT", "")}))
    with tracing.span("run attempt", parent, SpanKind.CONSUMER, attributes, started_by) as span:
        status = await _run_job(msg, job, settings, broker)
        if status != 0:
            span.set_status(StatusCode.ERROR, "the attempt did not run to its end")
        return status


async def _run_job(msg: NatsMessage, job: DispatchJob, settings: RunnerSettings, broker: NatsBroker) -> int:
    try:
        job = await takeover.fresh_credentials(broker, job)
    except takeover.CredentialsRefused as exc:
        log.info("job %s attempt %d should not run: %s", job.job_id, job.attempt, exc)
        await msg.ack()
        return 0
    except takeover.CredentialsUnavailable as exc:
        log.warning("%s; handing the job back", exc)
        await msg.nack(delay=NAK_DELAY)
        return 1
    env = TrainerEnv.from_dispatch(job, settings.heartbeat_interval, tracing.traceparent())
    client = CallbackClient.from_env(env)
    try:
        try:
            answer = await asyncio.to_thread(client.heartbeat)
        except CallbackError as exc:
            if exc.status_code is not None and 400 <= exc.status_code < 500:
                log.error(
                    "job %s attempt %d: callback refused (%s); dropping it", job.job_id, job.attempt, exc
                )
                await msg.ack()
                return 1
            log.warning("events service unreachable (%s); handing the job back", exc)
            await msg.nack(delay=NAK_DELAY)
            return 1
        if answer.stop:
            log.info("job %s attempt %d should not run: %s", job.job_id, job.attempt, answer.reason)
            await msg.ack()
            return 0
        # The runner's own callbacks (the trainer's output, a failure report) outlive its token in a long run.
        renewing = asyncio.create_task(takeover.keep_fresh(broker, job, client.use_token))
        try:
            ended = await _run_trainer(msg, env, settings.trainer_user or isolation.trainer_user(), client)
            returncode, reason = ended.returncode, exit_reason(ended.returncode, ended.stderr_tail)
        except TrainerNotStarted as exc:
            # Not the job's fault nor a reason to hand the message back: every runner of this image would
            # fail the same way, for ever. The attempt fails; the scheduler decides about a retry.
            returncode, reason = -1, str(exc)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        if returncode != 0:
            log.warning("job %s attempt %d: %s", job.job_id, job.attempt, reason)
            try:
                # Dropped as a duplicate (same Nats-Msg-Id) when the trainer already reported done itself.
                await asyncio.to_thread(client.done, "failed", reason)
            except CallbackError as exc:
                log.error("could not report the failure: %s", exc)
        await msg.ack()
        return 0 if returncode == 0 else 1
    finally:
        client.close()


class TrainerNotStarted(Exception):
    """The trainer's process could not be started: no work folder, no interpreter, a failed user switch."""


@dataclass(frozen=True)
class TrainerExit:
    returncode: int
    stderr_tail: list[str]


async def _run_trainer(
    msg: NatsMessage, env: TrainerEnv, user: isolation.TrainerUser, client: CallbackClient
) -> TrainerExit:
    try:
        work_dir = isolation.make_work_dir(user)
    except OSError as exc:
        raise TrainerNotStarted(f"could not start the trainer: no work folder ({exc})") from exc
    try:
        return await _run_trainer_in(msg, env, user, work_dir, client)
    finally:
        isolation.remove_work_dir(work_dir)


def trainer_command(framework: str) -> list[str]:
    return [sys.executable, "-m", f"trainers.{framework}"]


async def _run_trainer_in(
    msg: NatsMessage, env: TrainerEnv, user: isolation.TrainerUser, work_dir: Path, client: CallbackClient
) -> TrainerExit:
    """Run the trainer to its end, its stdout and stderr captured (trainers/output.py) and sent to the job
    as log lines (through the runner's `client`), with the job's own secrets redacted."""
    redact = Redactor.for_job(env.callback_token, (env.dataset_url, env.resume_url, env.weights_url))
    capture = OutputCapture(client, redact, OUTPUT_LIMITS)
    try:
        return await _capture_trainer(msg, env, user, work_dir, capture)
    finally:
        capture.close()


async def _capture_trainer(
    msg: NatsMessage, env: TrainerEnv, user: isolation.TrainerUser, work_dir: Path, capture: OutputCapture
) -> TrainerExit:
    framework = env.spec.framework
    try:
        child = await asyncio.create_subprocess_exec(
            *trainer_command(framework),
            env={**trainer_environ(env, work_dir=work_dir, user=user), **capture.environ()},
            cwd=work_dir,
            stdin=asyncio.subprocess.DEVNULL,
            **capture.popen_options(),
            **user.popen_options(preexec_fn=dies_with_parent()),
        )
    except (OSError, subprocess.SubprocessError) as exc:  # SubprocessError: the preexec_fn raised
        raise TrainerNotStarted(f"could not start the trainer: {exc}") from exc
    capture.started()
    log.info(
        "job %s attempt %d: started trainers.%s (pid %d, user %s)",
        env.job_id,
        env.attempt,
        framework,
        child.pid,
        user.name,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _forward, child, signum)
    keep_alive = asyncio.create_task(_keep_alive(msg))
    try:
        returncode = await capture.watch(child)
        if dropped := capture.dropped:
            log.info("job %s attempt %d: %d lines of output dropped", env.job_id, env.attempt, dropped)
        return TrainerExit(returncode, capture.stderr_tail())
    finally:
        keep_alive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keep_alive
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _forward(child: asyncio.subprocess.Process, signum: int) -> None:
    if child.returncode is None:
        log.info("forwarding %s to the trainer", signal.Signals(signum).name)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)


def dispatch_subscriber(broker: NatsBroker, settings: RunnerSettings) -> PullStreamSubscriber:
    """The pool's dispatch consumer as a FastStream pull subscriber, bound to the durable (nothing is
    declared: `JStream(declare=False)`, and `run` checks the consumer is there before binding, since binding
    to a missing durable would create one)."""
    subscriber = broker.subscriber(
        subjects.dispatch_subject(settings.pool),
        stream=JStream(subjects.DISPATCH_STREAM, declare=False),
        durable=subjects.pool_consumer(settings.pool),
        pull_sub=PullSub(batch_size=1, timeout=settings.fetch_timeout),
        # MANUAL: `settle` acks, naks or terminates each message itself, when the job's outcome is known.
        ack_policy=AckPolicy.MANUAL,
        # The pulled message comes back on the runner's own inbox, the only one it may read.
        inbox_prefix=pull_inbox(settings.credentials),
        no_reply=True,
    )
    assert isinstance(subscriber, PullStreamSubscriber)
    return subscriber


async def _consumer_in_place(broker: NatsBroker, pool: str) -> bool:
    js = broker.connection.jetstream()
    try:
        await js.consumer_info(subjects.DISPATCH_STREAM, subjects.pool_consumer(pool))
    except NotFoundError:
        return False
    return True


async def run(settings: RunnerSettings) -> int:
    broker = make_broker(settings.nats_url, f"vtp-runner-{settings.pool}", settings.credentials)
    subscriber = dispatch_subscriber(broker, settings)
    await broker.connect()
    try:
        if not await _consumer_in_place(broker, settings.pool):
            log.error(
                "pool %s has no dispatch consumer %s: `vtp pools prepare` (or `vtp up`) makes it",
                settings.pool,
                subjects.pool_consumer(settings.pool),
            )
            return 1
        await broker.start()
        # One pull request for one message: a runner runs one job and exits.
        msg = await subscriber.get_one(timeout=settings.fetch_timeout)
        if msg is None:
            log.info("pool %s: nothing to run", settings.pool)
            return 0
        return await settle(msg, settings, broker)
    finally:
        await broker.stop()  # unsubscribes and drains: the ack is out before the runner exits


def main() -> int:
    isolation.not_dumpable()
    logs.configure("vtp-runner")
    tracing.configure("vtp-runner", pool=os.environ.get("VTP_POOL", "local"))
    try:
        return asyncio.run(run(RunnerSettings.from_environ()))
    finally:
        tracing.shutdown()  # a runner lives for one job: its spans go out before it exits


if __name__ == "__main__":
    sys.exit(main())
