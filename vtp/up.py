"""`vtp up`: the whole platform on one machine.

Starts nats-server and Postgres (unless `NATS_URL` / `DATABASE_URL` point elsewhere), creates the secrets and
the default project once, migrates, then runs api, scheduler, events and the local pool as child processes and
supervises them until SIGINT or SIGTERM. Everything lives under the data dir, so a restart keeps every job,
event, artifact and the API key. The nats-server it starts has a user per role with that role's permissions
(messaging/permissions.py), and each child runs as its role's user.

`vtp up` owns what it starts: nats-server and Postgres are supervised and restarted like the services (same
config, data and ports); every child dies with it, even when it is SIGKILLed; one `vtp up` per data dir (a
lock); pid files let the next `vtp up` stop what a crashed one left behind (vtp/embedded/ownership.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import httpx

from messaging import permissions as nats_permissions
from messaging.credentials import NatsCredentials
from vtp import prometheus
from vtp.client import CLIENT_ENV, CliError, read_env_file, write_env_file
from vtp.embedded import ownership
from vtp.embedded.nats_server import read_config, write_config
from vtp.embedded.ports import free_port
from vtp.embedded.postgres import Cluster, start_postgres
from vtp.embedded.postgres import stop_postgres as stop_postgres
from vtp.embedded.supervision import Child, say, stop_children, supervise_once
from vtp.nats_auth import NatsUsers, env_file

PARTS = ("api", "scheduler", "events", "pool")
# The pool's supervisor shares its runners' user (`runner-<pool>`): they inherit its environment.
PART_USERS = {
    "api": nats_permissions.API,
    "scheduler": nats_permissions.SCHEDULER,
    "events": nats_permissions.EVENTS,
}
MIGRATED_SERVICES = ("api", "scheduler", "events")
DEFAULT_PROJECT = "default"
DATABASE = "vtp"
STARTUP_TIMEOUT = 120.0


# --- infrastructure -------------------------------------------------------------------------------


@dataclass
class Infrastructure:
    nats_url: str
    nats_monitor_url: str | None
    database_url: str
    nats_users: NatsUsers | None = None  # only for the nats-server started here
    children: list[Child] = field(default_factory=list)  # nats-server and Postgres, when started here

    def nats_environ(self, part: str, pool: str) -> dict[str, str]:
        """The NATS user a child runs as: its role's, on the nats-server started here; with `NATS_URL`, the
        environment's own (`NATS_USER`, `NATS_PASSWORD` pass through, if set)."""
        if self.nats_users is None:
            return {}
        return self.nats_users.environ(PART_USERS.get(part) or nats_permissions.runner_user(pool))

    def stop(self) -> None:
        if self.children:
            stop_children(self.children)
            say(f"{' and '.join(child.part for child in self.children)} stopped")


def database_url(data_dir: Path, environ: Mapping[str, str]) -> tuple[str, Path | None]:
    """`DATABASE_URL`, or the embedded Postgres of the data dir (started, or attached to if running)."""
    if environ.get("DATABASE_URL"):
        return environ["DATABASE_URL"], None
    pgdata = data_dir / "postgres"
    return start_postgres(pgdata), pgdata


def pool_of(environ: Mapping[str, str]) -> str:
    return environ.get("VTP_POOL", "local")


def start_nats(data_dir: Path, environ: Mapping[str, str], pool: str) -> tuple[Child, str, str, NatsUsers]:
    """nats-server with a user per role; credentials are made on the first start and kept in
    `<data-dir>/secrets/nats/<user>.env`. The admin creates the streams and the pool's consumer before any
    service starts (the services' users may not). Returns the child, its URL and monitoring URL, the users."""
    from messaging.nats import prepare

    users = NatsUsers.ensure(data_dir / "secrets" / "nats", [pool])
    config = write_config(data_dir / "nats", authorization=users.authorization())
    child = Child(
        "nats-server",
        data_dir / "nats" / "nats-server.log",
        env=environ,
        argv=config.command(),
        pid_file=ownership.pid_file(data_dir, "nats-server"),
    )
    child.start()
    try:
        config.wait_until_listening()
        asyncio.run(prepare(config.url, [pool], users.credentials(nats_permissions.ADMIN)))
    except BaseException:
        stop_children([child])
        raise
    return child, config.url, config.monitor_url, users


def start_embedded_postgres(data_dir: Path, environ: Mapping[str, str]) -> tuple[Child, str]:
    """Postgres on `<data-dir>/postgres`, in the foreground as a supervised child; its URL."""
    cluster = Cluster(data_dir / "postgres")
    cluster.prepare()
    if (running := cluster.postmaster()) is not None:
        # Not one of ours (those were stopped by their pid files): a server daemonized by an older `vtp up`
        # or `pg_ctl`. It would hold the data folder; a fast shutdown, then ours.
        say(f"stopping the postgres left running on {cluster.pgdata} (pid {running[0]})")
        ownership.stop_process(running[0], first=signal.SIGINT)
    cluster.clear_stale_locks()
    child = Child(
        "postgres",
        data_dir / "logs" / "postgres.log",
        env=environ,
        argv=cluster.command(),
        user=cluster.user,
        stop_signal=signal.SIGINT,  # fast shutdown: sessions end, no waiting for clients
        pid_file=ownership.pid_file(data_dir, "postgres"),
    )
    child.start()
    try:
        assert child.process is not None
        cluster.wait_ready(child.process)
        cluster.ensure_database(DATABASE)
    except BaseException:
        stop_children([child])
        raise
    return child, cluster.url(DATABASE)


def start_infrastructure(data_dir: Path, environ: Mapping[str, str]) -> Infrastructure:
    infra = Infrastructure(
        nats_url=environ.get("NATS_URL", ""),
        nats_monitor_url=environ.get("NATS_MONITOR_URL"),
        database_url=environ.get("DATABASE_URL", ""),
    )
    if not infra.nats_url:
        nats, infra.nats_url, infra.nats_monitor_url, infra.nats_users = start_nats(
            data_dir, environ, pool_of(environ)
        )
        infra.children.append(nats)
        say(f"nats-server at {infra.nats_url} (monitoring {infra.nats_monitor_url}), a user per role")
    if not infra.database_url:
        try:
            postgres, infra.database_url = start_embedded_postgres(data_dir, environ)
        except BaseException:
            infra.stop()
            raise
        infra.children.append(postgres)
        say(f"postgres in {data_dir / 'postgres'}")
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


def embedded_nats_admin(data_dir: Path) -> tuple[str, NatsCredentials] | None:
    """The URL and admin credentials of the nats-server `vtp up` runs for `data_dir` (None: it has none),
    for `vtp pools prepare` to declare a pool on it."""
    config = read_config(data_dir / "nats")
    if config is None:
        return None
    admin = env_file(data_dir / "secrets" / "nats", nats_permissions.ADMIN)
    values = read_env_file(admin) if admin.is_file() else {}
    return config.url, NatsCredentials.model_validate(values)


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


def service_children(
    data_dir: Path, env: Mapping[str, str], infra: Infrastructure, pool: str, ports: Mapping[str, int]
) -> list[Child]:
    """The four parts; `ports`: where each serves its metrics (the scheduler and the pool on a port of
    their own, `VTP_METRICS_PORT`)."""
    return [
        Child(
            part,
            data_dir / "logs" / f"{part}.log",
            env={
                **(
                    pool_environment(data_dir, env, infra, pool)
                    if part == "pool"
                    else {**env, **infra.nats_environ(part, pool)}
                ),
                **_metrics_environ(part, ports),
            },
            # The data dir on its command line: which platform it belongs to, in `ps` and for the next
            # `vtp up` after a crash (vtp/embedded/ownership.py); its settings come from the environment.
            argv=[sys.executable, "-m", "vtp.cli", "--data-dir", str(data_dir), "serve", part],
            pid_file=ownership.pid_file(data_dir, part),
        )
        for part in PARTS
    ]


def _metrics_environ(part: str, ports: Mapping[str, int]) -> dict[str, str]:
    if part not in ("scheduler", "pool"):
        return {}
    return {"VTP_METRICS_PORT": str(ports[part]), "VTP_METRICS_HOST": "127.0.0.1"}


def pool_environment(
    data_dir: Path, env: Mapping[str, str], infra: Infrastructure, pool: str
) -> dict[str, str]:
    """Only what the pool and its runners need (trainers/pool.py): no DATABASE_URL, storage or signing key;
    its NATS password as the 0600 file that holds it (`VTP_NATS_CREDENTIALS`), not in its environment."""
    from trainers.isolation import CREDENTIALS
    from trainers.pool import pool_environ

    if infra.nats_users is None:
        return pool_environ(env)
    credentials = env_file(data_dir / "secrets" / "nats", nats_permissions.runner_user(pool))
    return {**pool_environ(env), CREDENTIALS: str(credentials)}


def keep_private(data_dir: Path) -> None:
    """Stored datasets and artifacts, logs and nats-server's folder: for `vtp up`'s user alone. Embedded
    Postgres opens the data dir to every user (its own must reach its folder), and a trainer runs as
    another user that must not read another project's dataset from disk."""
    for name in ("storage", "logs", "nats"):
        (data_dir / name).mkdir(exist_ok=True)
        (data_dir / name).chmod(0o700)


def wait_healthy(urls: list[str], children: list[Child], stop: threading.Event) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    pending = list(urls)
    with httpx.Client(timeout=1.0) as http:
        while pending and not stop.is_set():
            supervise_once(children)
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
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    try:
        lock = ownership.lock_data_dir(data_dir)
    except ownership.DataDirBusy as exc:
        raise CliError(str(exc)) from None
    try:
        if stale := ownership.stop_stale(data_dir):
            say(f"stopped what a crashed `vtp up` left running: {', '.join(stale)}")
        return _run(data_dir, port, environ)
    finally:
        lock.release()


def events_port_of(data_dir: Path, environ: dict[str, str]) -> int:
    """`VTP_EVENTS_PORT`, else the port this data dir's events service had before (chosen free the first
    time, then kept in `<data-dir>/events.port`): a queued job's dispatch carries its callback URL, so a port
    chosen anew on a restart would leave every job queued before it calling a service that is not there."""
    if explicit := environ.get("VTP_EVENTS_PORT"):
        return int(explicit)
    return kept_port(data_dir / "events.port")


def kept_port(remembered: Path, must_be_free: bool = False) -> int:
    """The port kept in `remembered`, else (or, with `must_be_free`, when another process holds it) one
    chosen free now and kept there."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        port = int(remembered.read_text())
        if not must_be_free or port_is_free(port):
            return port
    chosen = free_port()
    remembered.write_text(f"{chosen}\n")
    return chosen


def metrics_ports(data_dir: Path, api_port: int, events_port: int) -> dict[str, int]:
    """Where each part serves `/metrics`: the api and events on their own ports; the scheduler and the pool
    on ports of their own, kept per data dir (so Prometheus sees the same instances after a restart)."""
    return {
        "api": api_port,
        "scheduler": kept_port(data_dir / "scheduler-metrics.port", must_be_free=True),
        "events": events_port,
        "pool": kept_port(data_dir / "pool-metrics.port", must_be_free=True),
    }


def _run(data_dir: Path, port: int, environ: dict[str, str]) -> int:
    logs = data_dir / "logs"
    events_port = events_port_of(data_dir, environ)
    for name, wanted in (("API", port), ("events", events_port)):
        if not port_is_free(wanted):
            raise CliError(f"the {name} port {wanted} is already in use")

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        say(f"received {signal.Signals(signum).name}, stopping")
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    children: list[Child] = []
    try:
        infra = start_infrastructure(data_dir, environ)
    except BaseException:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise
    try:
        keys = ensure_secrets(data_dir)
        keep_private(data_dir)
        migrate(infra.database_url)
        api_url = f"http://127.0.0.1:{port}"
        client_env = ensure_client_env(data_dir, infra.database_url, api_url)
        env = child_environment(environ, data_dir, infra, keys, port, events_port)
        if stop.is_set():
            return 0
        ports = metrics_ports(data_dir, port, events_port)
        prometheus_config = prometheus.write_config(data_dir, ports)
        children = service_children(data_dir, env, infra, pool_of(environ), ports)
        for child in children:
            child.start()
        supervised = [*infra.children, *children]
        health = [f"{api_url}/healthz", f"http://127.0.0.1:{events_port}/healthz"]
        if not wait_healthy(health, supervised, stop):
            if stop.is_set():
                return 0
            say(f"start-up failed; logs are in {logs}")
            return 1
        say(f"platform is up: API {api_url}")
        say(f"client config: {client_env} (logs: {logs}); Ctrl-C stops")
        say(f"metrics: prometheus --config.file={prometheus_config}")
        while not stop.wait(0.5):
            supervise_once(supervised)
        return 0
    finally:
        stop_children(children)
        say("services stopped")
        infra.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
