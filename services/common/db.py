"""Database engine, sessions and migrations. Each service owns its tables, its own Alembic folder
(`services/<name>/migrations`) and its own version table, so services migrate independently."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

SERVICES_DIR = Path(__file__).resolve().parent.parent


def make_engine(
    database_url: str, pool_size: int = 8, max_overflow: int | None = None, pre_ping: bool = True
) -> AsyncEngine:
    """`max_overflow` defaults to `pool_size`. `pre_ping=False` saves a round trip per checkout: a connection
    the server dropped then fails the one statement that uses it (and is replaced); recycling connections
    hourly keeps such drops rare."""
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_pre_ping=pre_ping,
        pool_recycle=3600,
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(service: str, database_url: str) -> Config:
    folder = SERVICES_DIR / service / "migrations"
    config = Config()
    config.set_main_option("script_location", str(folder))
    # configparser treats % as interpolation: an URL-encoded socket path (%2F) must be escaped.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["version_table"] = f"alembic_version_{service}"
    return config


def upgrade(service: str, database_url: str) -> None:
    """Bring one service's tables to the newest revision (blocking; run it before the service starts)."""
    command.upgrade(alembic_config(service, database_url), "head")


async def upgrade_async(service: str, database_url: str) -> None:
    await asyncio.to_thread(upgrade, service, database_url)
