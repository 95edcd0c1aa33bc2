"""What `vtp up` owns in its data dir: a lock that keeps a second `vtp up` out, and a pid file per process
it started, so that the next `vtp up` after a crash stops whatever of them is still running.

A pid file holds the pid and the process's start time (`/proc/<pid>/stat`): a pid reused by a process that
is not ours never matches both, and a process is only ever stopped when it also names the data dir (in its
command line or `VTP_DATA_DIR`).
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "vtp-up.lock"
RUN_DIR = "run"
STOP_WAIT = 10.0


class DataDirBusy(Exception):
    def __init__(self, data_dir: Path, pid: int | None) -> None:
        self.pid = pid
        holder = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"another `vtp up` ({holder}) is running on {data_dir}; stop it first (Ctrl-C where it runs"
            + (f", or `kill {pid}`)" if pid else ")")
        )


@dataclass
class DataDirLock:
    """An exclusive `flock` on `<data-dir>/vtp-up.lock`, holding the owner's pid. The kernel drops it when
    the process ends, however it ends: a stale lock file never blocks."""

    fd: int
    path: Path

    def release(self) -> None:
        os.close(self.fd)


def lock_data_dir(data_dir: Path) -> DataDirLock:
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise DataDirBusy(data_dir, int(holder) if holder.isdecimal() else None) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return DataDirLock(fd, path)


# --- /proc ----------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces): [state, ppid, pgrp,
    ...]; None when there is no such process or it is a zombie (dead, not yet reaped)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return None if fields[0] in ("Z", "X") else fields


def start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None  # field 22 of stat(5): starttime, in clock ticks after boot


def alive(pid: int) -> bool:
    return _stat(pid) is not None


def names_data_dir(pid: int, data_dir: Path) -> bool:
    marker = str(data_dir).encode()
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if marker in cmdline:
            return True
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"VTP_DATA_DIR=" + marker in environ


def group_members(pgid: int) -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdecimal() and (fields := _stat(int(entry.name))) and int(fields[2]) == pgid:
            yield int(entry.name)


def stop_group(pgid: int, first: signal.Signals = signal.SIGKILL, wait: float = STOP_WAIT) -> None:
    """Signal a process group, then SIGKILL whatever of it is left after `wait`; return once it is gone."""
    for signum in dict.fromkeys((first, signal.SIGKILL)):
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not any(True for _ in group_members(pgid)):
                return
            time.sleep(0.05)


def stop_process(pid: int, first: signal.Signals = signal.SIGKILL) -> None:
    """A child of `vtp up` leads a process group of its own (its session): stop the whole group."""
    try:
        leader = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    if leader:
        stop_group(pid, first)
    else:
        os.kill(pid, signal.SIGKILL)


# --- pid files ------------------------------------------------------------------------------------


def pid_file(data_dir: Path, part: str) -> Path:
    return data_dir / RUN_DIR / f"{part}.pid"


def write_pid_file(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid} {start_time(pid) or '?'}\n")


def stop_stale(data_dir: Path) -> list[str]:
    """Stop (SIGKILL, with its process group) each process a pid file names that is still the process it
    was written for; remove the pid files. Returns what was stopped, as `part (pid N)`."""
    stopped = []
    for path in sorted((data_dir / RUN_DIR).glob("*.pid")):
        try:
            pid_text, started = path.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            pid, started = 0, ""
        if pid and start_time(pid) == started and names_data_dir(pid, data_dir):
            stop_process(pid)
            stopped.append(f"{path.stem} (pid {pid})")
        path.unlink(missing_ok=True)
    return stopped
