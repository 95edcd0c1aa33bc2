"""Migration 0002 (dataset versions) on a database that already holds datasets: they are numbered per name in
upload order and stay usable (READY); downgrading removes what it added. (Alembic runs its own event loop,
so it runs in a thread here.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.db import alembic_config


async def test_existing_datasets_get_versions_and_stay_ready(database_url_for: Callable[[str], str]) -> None:
    url = database_url_for("vtp_migration_0002")
    config = alembic_config("api", url)
    await asyncio.to_thread(command.upgrade, config, "0001")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO api_projects VALUES ('p', 'p', now())"))
            for dataset_id, name, age in (("a", "shapes", 3), ("b", "shapes", 2), ("c", "other", 1)):
                await conn.execute(
                    text(
                        "INSERT INTO api_datasets VALUES (:id, 'p', :name, 'imagefolder', 'x.zip', :key, 1, "
                        "'ff', now() - make_interval(hours => :age))"
                    ),
                    {"id": dataset_id, "name": name, "key": f"datasets/{dataset_id}/x.zip", "age": age},
                )
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT id, version, status FROM api_datasets ORDER BY id"))
            assert [tuple(row) for row in rows] == [("a", 1, "READY"), ("b", 2, "READY"), ("c", 1, "READY")]
        await asyncio.to_thread(command.downgrade, config, "0001")
        async with engine.connect() as conn:
            columns = await conn.execute(
                text("SELECT column_name FROM information_schema.columns WHERE table_name = 'api_datasets'")
            )
            assert "version" not in {row[0] for row in columns}
    finally:
        await engine.dispose()
