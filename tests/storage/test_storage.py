"""The `Storage` contract, with the same assertions on both backends (see conftest): round trips, large
objects, size limits that leave nothing behind, refused keys, missing objects, and presigned URLs that read or
write one key with one method until they expire."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.api.upload_sweeper import sweep_uploads
from services.common.s3_storage import MIN_PART_SIZE
from services.common.storage import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectTooLarge,
    Storage,
    artifact_key,
    dataset_key,
    job_prefix,
    upload_key,
)
from tests.storage.conftest import chunked


def new_job() -> str:
    return uuid.uuid4().hex


async def read_all(storage: Storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.read_stream(key)])


async def test_put_get_stat_list_round_trip(backend):
    storage, job = backend.storage, new_job()
    model, metrics = artifact_key(job, "model.pt"), artifact_key(job, "metrics.json")
    data = os.urandom(200_000)

    assert await storage.put_stream(model, chunked(data)) == ObjectInfo(model, len(data))
    await storage.put_stream(metrics, chunked(b"{}"))
    await storage.put_stream(artifact_key(job + "0", "model.pt"), chunked(b"a neighbour"))

    assert await storage.stat(model) == ObjectInfo(model, len(data))
    assert await read_all(storage, model) == data
    # The prefix is a folder: the job whose id merely starts the same is not listed.
    assert await storage.list(job_prefix(job)) == [ObjectInfo(metrics, 2), ObjectInfo(model, len(data))]
    assert await storage.list(job_prefix(new_job())) == []

    await storage.put_stream(model, chunked(b""))  # replaced, now empty
    assert await storage.stat(model) == ObjectInfo(model, 0)
    assert await read_all(storage, model) == b""


async def test_a_large_object_round_trips(backend):
    """Past two parts on S3 (a multipart upload), streamed in chunks that do not line up with the parts."""
    key, data = artifact_key(new_job(), "last.pt"), os.urandom(2 * MIN_PART_SIZE + MIN_PART_SIZE // 2)
    info = await backend.storage.put_stream(key, chunked(data, size=1_000_003))
    assert info == ObjectInfo(key, len(data))
    assert await backend.storage.stat(key) == info
    read = hashlib.sha256()
    async for chunk in backend.storage.read_stream(key):
        read.update(chunk)
    assert read.hexdigest() == hashlib.sha256(data).hexdigest()


async def test_delete_and_move(backend):
    storage, job = backend.storage, new_job()
    source, target = f"uploads/{job}/archive", artifact_key(job, "archive.zip")
    await storage.put_stream(source, chunked(b"zip bytes"))

    await storage.move(source, target)
    assert await read_all(storage, target) == b"zip bytes"
    with pytest.raises(ObjectNotFound):
        await storage.stat(source)

    await storage.delete(target)
    await storage.delete(target)  # gone already: nothing to do
    assert await storage.list(job_prefix(job)) == []


@pytest.mark.parametrize(
    "limit",
    [1000, 2 * MIN_PART_SIZE + 1000],
    ids=["refused in the first part", "refused after parts went up"],
)
async def test_an_object_past_max_bytes_is_refused_and_leaves_nothing(backend, limit):
    job = new_job()
    key = artifact_key(job, "too-big.bin")
    with pytest.raises(ObjectTooLarge):
        await backend.storage.put_stream(key, chunked(b"x" * (limit + 1), size=1024 * 1024), max_bytes=limit)
    with pytest.raises(ObjectNotFound):
        await backend.storage.stat(key)
    assert await backend.storage.list(job_prefix(job)) == []
    assert await backend.half_written(job_prefix(job)) == []


async def test_a_source_that_breaks_off_leaves_nothing(backend):
    job = new_job()

    async def breaks_off() -> AsyncIterator[bytes]:
        async for chunk in chunked(b"y" * (2 * MIN_PART_SIZE + 1), size=1024 * 1024):
            yield chunk
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await backend.storage.put_stream(artifact_key(job, "partial.bin"), breaks_off())
    assert await backend.storage.list(job_prefix(job)) == []
    assert await backend.half_written(job_prefix(job)) == []


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../escape", "jobs/../../etc", "jobs//x", "jobs/./x", "jobs/x y", "jobs/%2e%2e"],
)
async def test_invalid_keys_are_refused(backend, key):
    storage, valid = backend.storage, artifact_key(new_job(), "model.pt")
    with pytest.raises(InvalidKey):
        await storage.put_stream(key, chunked(b"x"))
    with pytest.raises(InvalidKey):
        await storage.stat(key)
    with pytest.raises(InvalidKey):
        await read_all(storage, key)
    with pytest.raises(InvalidKey):
        await storage.list(key)
    with pytest.raises(InvalidKey):
        await storage.delete(key)
    with pytest.raises(InvalidKey):
        await storage.move(key, valid)
    with pytest.raises(InvalidKey):
        await storage.move(valid, key)
    for method in ("GET", "PUT"):
        with pytest.raises(InvalidKey):
            storage.presign(key, method, 60)


async def test_a_missing_object_is_not_found(backend):
    storage, key = backend.storage, artifact_key(new_job(), "missing.pt")
    with pytest.raises(ObjectNotFound):
        await storage.stat(key)
    with pytest.raises(ObjectNotFound):
        await read_all(storage, key)
    with pytest.raises(ObjectNotFound):
        await storage.move(key, artifact_key(new_job(), "elsewhere.pt"))
    await storage.delete(key)


async def test_presigned_urls_write_and_read_the_key(backend):
    """As trainers and the CLI upload: a streamed body with its length declared."""
    storage, key, data = backend.storage, artifact_key(new_job(), "best.pt"), os.urandom(100_000)
    headers = {"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"}
    async with httpx.AsyncClient() as client:
        put = await client.put(storage.presign(key, "PUT", 60), content=chunked(data), headers=headers)
        assert put.is_success, put.text
        assert await storage.stat(key) == ObjectInfo(key, len(data))
        got = await client.get(storage.presign(key, "GET", 60))
        assert got.status_code == 200
        assert got.content == data
        # What a browser sent to the URL saves, both backends: a file named for the key's last part.
        assert got.headers["content-disposition"] == 'attachment; filename="best.pt"'


async def test_a_presigned_url_is_for_one_key_one_method_until_it_expires(backend):
    storage = backend.storage
    mine, theirs = artifact_key(new_job(), "best.pt"), artifact_key(new_job(), "best.pt")
    await storage.put_stream(mine, chunked(b"mine"))
    await storage.put_stream(theirs, chunked(b"theirs"))
    get_url, put_url = storage.presign(mine, "GET", 60), storage.presign(mine, "PUT", 60)
    refused = {
        "GET of another job's object": ("GET", get_url.replace(mine, theirs)),
        "PUT over another job's object": ("PUT", put_url.replace(mine, theirs)),
        "GET with the PUT URL": ("GET", put_url),
        "PUT with the GET URL": ("PUT", get_url),
        "GET after expiry": ("GET", backend.presign_an_hour_ago(mine, "GET")),
        "PUT after expiry": ("PUT", backend.presign_an_hour_ago(mine, "PUT")),
    }
    async with httpx.AsyncClient() as client:
        for case, (method, url) in refused.items():
            response = await client.request(method, url, content=b"overwritten" if method == "PUT" else None)
            assert response.status_code == 403, case
            assert b"theirs" not in response.content, case
    assert await read_all(storage, mine) == b"mine"
    assert await read_all(storage, theirs) == b"theirs"


async def test_uploads_not_turned_into_datasets_are_swept_by_age(backend):
    storage, project = backend.storage, new_job()
    uploads = [upload_key(project, new_job()) for _ in range(2)]
    dataset = dataset_key(new_job(), "kept.zip")
    for key in (*uploads, dataset):
        await storage.put_stream(key, chunked(b"archive"))
    listed = await storage.list(f"uploads/{project}")
    assert [info.key for info in listed] == sorted(uploads)
    now = datetime.now(UTC)
    assert all(
        info.modified is not None and abs(info.modified - now) < timedelta(minutes=1) for info in listed
    )

    assert await sweep_uploads(storage, written_before=now - timedelta(hours=1)) == 0
    assert [info.key for info in await storage.list(f"uploads/{project}")] == sorted(uploads)
    assert await sweep_uploads(storage, written_before=now + timedelta(minutes=1)) >= 2
    assert await storage.list(f"uploads/{project}") == []
    assert await storage.stat(dataset) == ObjectInfo(dataset, len(b"archive"))  # only uploads are swept
