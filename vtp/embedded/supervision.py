"""The children of `vtp up` (the services, nats-server, Postgres): started in a session of their own, dying
with `vtp up` even when it is SIGKILLed, restarted with a growing backoff while they keep dying, stopped in
order with their whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trainers.lifetime import dies_with_parent
from trainers.preemption import grace_from_environ
from vtp.embedded import ownership

# Beyond a trainer's preemption grace: the pool lets a preempted trainer save its checkpoint, then stops.
STOP_MARGIN = 15.0
RESTART_BACKOFF_MAX = 30.0
HEALTHY_RUN = 60.0  # a child that ran this long before dying restarts without backoff


def say(message: str) -> None:
    print(f"vtp up: {message}", flush=True)


@dataclass
class Child:
    part: str
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    argv: Sequence[str] = ()  # default: `vtp serve <part>`
    user: str | None = None  # run as this OS user (Postgres under root)
    stop_signal: int = signal.SIGTERM
    pid_file: Path | None = None  # rewritten at every start, for the next `vtp up` after a crash
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # A session of its own: Ctrl-C reaches only the supervisor, which stops children in order.
            self.process = subprocess.Popen(
                self.command(),
                env=dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
                start_new_session=True,
                preexec_fn=dies_with_parent(),
            )
        if self.pid_file is not None:
            ownership.write_pid_file(self.pid_file, self.process.pid)
        self.started_at, self.restart_at = time.monotonic(), None

    def command(self) -> list[str]:
        return list(self.argv) or [sys.executable, "-m", "vtp.cli", "serve", self.part]

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(self.stop_signal)

    def kill(self) -> None:
        """The whole process group: a pool's runners and trainers, Postgres' backends go with it."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    def forget(self) -> None:
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)

    def tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def supervise_once(children: list[Child]) -> None:
    """Report children that died and restart them after a backoff that grows while they keep dying."""
    now = time.monotonic()
    for child in children:
        code = child.exit_code()
        if code is None:
            continue
        if child.restart_at is None:
            child.kill()  # what is left of its group (a killed postmaster's backends) would block a restart
            child.failures = 1 if now - child.started_at > HEALTHY_RUN else child.failures + 1
            delay = min(2.0 ** (child.failures - 1), RESTART_BACKOFF_MAX)
            child.restart_at = now + delay
            say(f"{child.part} exited with code {code}; restarting in {delay:.0f}s (log: {child.log_path})")
            if tail := child.tail():
                print(tail, flush=True)
        elif now >= child.restart_at:
            child.start()
            say(f"{child.part} restarted")


def stop_children(children: list[Child], timeout: float | None = None) -> None:
    """Each child's stop signal, wait up to `timeout` (default: `VTP_PREEMPT_GRACE` and a margin), then kill
    what is left (with its process group)."""
    timeout = grace_from_environ() + STOP_MARGIN if timeout is None else timeout
    for child in children:
        child.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            say(f"{child.part} did not stop within {timeout:.0f}s; killing it")
        child.kill()
        child.forget()
