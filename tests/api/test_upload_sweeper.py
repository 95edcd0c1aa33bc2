from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from services.api.upload_sweeper import UploadSweeper
from services.common.storage import LocalStorage, UrlSigner, dataset_key, upload_key
from tests.storage.conftest import chunked


async def test_the_sweeper_deletes_old_uploads_as_it_goes_and_stops_cleanly(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, UrlSigner("unused", "http://unused"))
    sweeper = UploadSweeper(storage, keep=timedelta(seconds=1), every=timedelta(seconds=0.05))
    abandoned, dataset = upload_key("p1", "a" * 32), dataset_key("d1", "kept.zip")
    await storage.put_stream(abandoned, chunked(b"archive"))
    await storage.put_stream(dataset, chunked(b"archive"))
    sweeper.start()
    try:
        await asyncio.sleep(0.1)
        assert [info.key for info in await storage.list("uploads")] == [abandoned]  # not old enough yet
        async with asyncio.timeout(5):
            while await storage.list("uploads"):  # noqa: ASYNC110 - polling storage the sweeper changes
                await asyncio.sleep(0.05)
    finally:
        await sweeper.stop()
    assert [info.key for info in await storage.list("datasets")] == [dataset]
