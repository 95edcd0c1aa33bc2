"""Deletes signed uploads nobody turned into a dataset.

A client PUTs an archive to its upload URL (`POST /v1/datasets/uploads`), then `POST /v1/datasets` with the
upload id moves it under `datasets/`. An upload never finalized would stay under `uploads/` for good; each
api process deletes those written more than `keep` ago, at start and then every `every` seconds (several
processes doing so is harmless: deleting is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from services.common.storage import Storage, StorageError

log = logging.getLogger(__name__)

UPLOADS_PREFIX = "uploads"


async def sweep_uploads(storage: Storage, written_before: datetime) -> int:
    """Delete the uploads written before `written_before`; how many were deleted."""
    stale = [
        info.key
        for info in await storage.list(UPLOADS_PREFIX)
        if info.modified is not None and info.modified < written_before
    ]
    for key in stale:
        await storage.delete(key)
    return len(stale)


class UploadSweeper:
    def __init__(self, storage: Storage, keep: timedelta, every: timedelta) -> None:
        self._storage = storage
        self._keep = keep
        self._every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="upload-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                removed = await sweep_uploads(self._storage, datetime.now(UTC) - self._keep)
                if removed:
                    log.info("deleted %d upload(s) not turned into a dataset within %s", removed, self._keep)
            except (StorageError, OSError) as exc:
                log.warning("sweeping old uploads failed (next try in %s): %s", self._every, exc)
            await asyncio.sleep(self._every.total_seconds())
