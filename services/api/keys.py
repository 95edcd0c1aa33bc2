"""Projects and API keys. `vtp up` makes the first project on first start; tests make more.

A key is `vtp_<random>`; only its sha256 is stored, so a leaked database leaks no usable key.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.api import repository
from services.api.models import ApiKey, Project
from services.common.db import make_engine, make_sessionmaker

KEY_PREFIX = "vtp_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


async def create_project(database_url: str, name: str) -> tuple[str, str]:
    """Create a project with one API key; return `(project_id, api_key)`. The key is not stored anywhere."""
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            project_id, api_key = await add_project(session, name)
            await session.commit()
    finally:
        await engine.dispose()
    return project_id, api_key


def create_project_sync(database_url: str, name: str) -> tuple[str, str]:
    return asyncio.run(create_project(database_url, name))


async def add_project(session: AsyncSession, name: str) -> tuple[str, str]:
    """Add a project and its key in the caller's transaction (not committed)."""
    now = datetime.now(UTC)
    api_key = new_api_key()
    project = Project(id=uuid.uuid4().hex, name=name, created_at=now)
    key = ApiKey(
        id=uuid.uuid4().hex,
        project_id=project.id,
        key_hash=hash_key(api_key),
        prefix=api_key[:12],
        created_at=now,
        revoked_at=None,
    )
    await repository.add_project(session, project, key)
    return project.id, api_key
