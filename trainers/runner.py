"""`python -m trainers.runner`: run exactly one job of a pool.

Fetch one message from the pool's durable consumer (nothing there: exit 0), ask the events service whether
the job should still run (stop: ack and exit), start `python -m trainers.<framework>` with the trainer
environment only (no NATS, database or storage credentials), keep the message alive with `in_progress()`,
report `done(failed)` if the trainer exits non-zero, then ack. SIGTERM is forwarded to the trainer.

What a runner holds stays with it (trainers/isolation.py): its NATS credentials come from
`VTP_NATS_CREDENTIALS` (stdin, a file or a mounted Secret), the trainer gets an environment of its job's
variables and a few harmless settings, runs as another user when the runner is root (`VTP_TRAINER_USER`),
in a private work folder, and the runner is not dumpable.

Ack semantics: ack once the job has ended one way or another (the scheduler retries failed attempts, not
the dispatch). A message that does not parse is terminated. When the events service cannot be reached before
the start, the message is nak'ed with a delay for a later runner.
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
from dataclasses import dataclass
from pathlib import Path

from nats.aio.msg import Msg
from pydantic import ValidationError

from contracts import subjects
from contracts.dispatch import DispatchJob
from messaging import nats as common_nats
from messaging.credentials import NatsCredentials
from trainers import isolation, logs
from trainers.callbacks import CallbackClient, CallbackError
from trainers.env import TrainerEnv
from trainers.lifetime import dies_with_parent

log = logging.getLogger("trainers.runner")

IN_PROGRESS_EVERY = 15.0
FETCH_TIMEOUT = 2.0
NAK_DELAY = 10.0
# What the trainer inherits from the runner's environment; everything else (NATS_URL, NATS_PASSWORD,
# DATABASE_URL, storage keys, cloud credentials...) stays behind, and so does any variable whose name says
# it holds a secret (HF_TOKEN, say).
PASSTHROUGH = ("PATH", "HOME", "LANG", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH")
PASSTHROUGH_PREFIXES = (
    "LC_", "CUDA_", "NVIDIA_", "HF_", "TORCH_", "OMP_", "MKL_", "YOLO_", "VTP_LOG_", "VTP_CHECKPOINT_",
)  # fmt: skip
SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "KEY", "CREDENTIAL", "AUTH")
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


def exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"trainer exited with signal {name}"
    return f"trainer exited with code {returncode}"


async def _keep_alive(msg: Msg) -> None:
    while True:
        await asyncio.sleep(IN_PROGRESS_EVERY)
        try:
            await msg.in_progress()
        except Exception as exc:  # a NATS hiccup must not kill the run; the next tick tries again
            log.warning("in_progress failed: %s", exc)


async def run_job(msg: Msg, job: DispatchJob, settings: RunnerSettings) -> int:
    env = TrainerEnv.from_dispatch(job, settings.heartbeat_interval)
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
            await msg.nak(delay=NAK_DELAY)
            return 1
        if answer.stop:
            log.info("job %s attempt %d should not run: %s", job.job_id, job.attempt, answer.reason)
            await msg.ack()
            return 0
        returncode = await _run_trainer(msg, env, settings.trainer_user or isolation.trainer_user())
        if returncode != 0:
            reason = exit_reason(returncode)
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


async def _run_trainer(msg: Msg, env: TrainerEnv, user: isolation.TrainerUser) -> int:
    work_dir = isolation.make_work_dir(user)
    try:
        return await _run_trainer_in(msg, env, user, work_dir)
    finally:
        isolation.remove_work_dir(work_dir)


async def _run_trainer_in(msg: Msg, env: TrainerEnv, user: isolation.TrainerUser, work_dir: Path) -> int:
    framework = env.spec.framework
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"trainers.{framework}",
        env=trainer_environ(env, work_dir=work_dir, user=user),
        cwd=work_dir,
        stdin=asyncio.subprocess.DEVNULL,
        **user.popen_options(preexec_fn=dies_with_parent()),
    )
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
        return await child.wait()
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


async def run(settings: RunnerSettings) -> int:
    nc = await common_nats.connect(
        settings.nats_url, name=f"vtp-runner-{settings.pool}", credentials=settings.credentials
    )
    try:
        js = nc.jetstream()
        await common_nats.ensure_streams(js)
        await common_nats.ensure_pool_consumer(js, settings.pool)
        sub = await js.pull_subscribe_bind(
            durable=subjects.pool_consumer(settings.pool), stream=subjects.DISPATCH_STREAM
        )
        try:
            messages = await sub.fetch(1, timeout=settings.fetch_timeout)
        except TimeoutError:
            log.info("pool %s: nothing to run", settings.pool)
            return 0
        finally:
            # Only one message, ever; a pull subscription left open also makes drain() hang.
            await sub.unsubscribe()
        msg = messages[0]
        try:
            job = DispatchJob.model_validate_json(msg.data)
        except ValidationError as exc:
            log.error("terminating an unparseable dispatch message: %s", exc.errors()[:1])
            await msg.term()
            return 1
        return await run_job(msg, job, settings)
    finally:
        await nc.drain()


def main() -> int:
    isolation.not_dumpable()
    logs.configure()
    return asyncio.run(run(RunnerSettings.from_environ()))


if __name__ == "__main__":
    sys.exit(main())
