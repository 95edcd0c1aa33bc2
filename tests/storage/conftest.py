"""The two backends the storage suite runs on: the local folder (its signed URLs served by a real events
service) and S3 (moto's S3 server on a free port, its presigned URLs checked as S3 checks them)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Protocol
from unittest import mock

import anyio
import boto3
import pytest
from botocore.compat import get_current_datetime

from services.common.s3_storage import MIN_PART_SIZE, S3Config, S3Storage
from services.common.settings import CommonSettings
from services.common.storage import LocalStorage, Method, UrlSigner
from tests.events.conftest import (
    EventsService,
    events_service,  # noqa: F401  (the local backend's URLs are served there)
)
from tests.storage.s3_server import MotoS3Server

ACCESS_KEY_ID = "vtp-tests-access-key"
SECRET_ACCESS_KEY = "vtp-tests-secret-access-key"
BUCKET = "vtp-storage-tests"


async def chunked(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Backend(Protocol):
    storage: LocalStorage | S3Storage

    def presign_an_hour_ago(self, key: str, method: Method) -> str:
        """A URL like `storage.presign(key, method, 60)`, issued an hour ago."""
        ...

    async def half_written(self, prefix: str) -> list[str]:
        """What an interrupted upload left under the prefix, seen or not by `list`."""
        ...


class LocalBackend:
    def __init__(self, events: EventsService) -> None:
        self._signer = UrlSigner(events.settings.storage_signing_key, events.url)
        self._root = events.settings.storage_dir
        self.storage = LocalStorage(self._root, self._signer)

    def presign_an_hour_ago(self, key: str, method: Method) -> str:
        return self._signer.sign(key, method, 60, now=time.time() - 3600)

    async def half_written(self, prefix: str) -> list[str]:
        folder = self._root / prefix
        return [str(path) for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def s3_settings(endpoint: str) -> CommonSettings:
    return CommonSettings(
        storage_backend="s3",
        storage_s3_endpoint=endpoint,
        storage_s3_bucket=BUCKET,
        storage_s3_access_key_id=ACCESS_KEY_ID,
        storage_s3_secret_access_key=SECRET_ACCESS_KEY,
        storage_s3_path_style=True,
    )


class S3Backend:
    def __init__(self, server: MotoS3Server) -> None:
        config = S3Config.from_settings(s3_settings(server.url))
        # The smallest parts S3 takes, so that a few MiB already make a multipart upload.
        self.storage = S3Storage(config, part_size=MIN_PART_SIZE)
        self.client = boto3.client("s3", **config.client_args())

    def presign_an_hour_ago(self, key: str, method: Method) -> str:
        an_hour_ago = get_current_datetime() - timedelta(hours=1)
        with mock.patch("botocore.auth.get_current_datetime", return_value=an_hour_ago):
            return self.storage.presign(key, method, 60)

    async def half_written(self, prefix: str) -> list[str]:
        answer = await anyio.to_thread.run_sync(
            lambda: self.client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
        )
        return [upload["Key"] for upload in answer.get("Uploads", [])]


@pytest.fixture(scope="package")
def s3_server() -> Iterator[MotoS3Server]:
    server = MotoS3Server({ACCESS_KEY_ID: SECRET_ACCESS_KEY})
    server.start()
    config = S3Config.from_settings(s3_settings(server.url))
    boto3.client("s3", **config.client_args()).create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="package", params=["local", "s3"])
def started_backend(request: pytest.FixtureRequest) -> LocalBackend | S3Backend:
    """Only the server the backend needs is started. Not async: the events service's migrations run an event
    loop of their own."""
    if request.param == "local":
        return LocalBackend(request.getfixturevalue("events_service"))
    return S3Backend(request.getfixturevalue("s3_server"))


@pytest.fixture(scope="package")
async def backend(started_backend: LocalBackend | S3Backend) -> AsyncIterator[Backend]:
    yield started_backend
    await started_backend.storage.aclose()


@pytest.fixture
async def s3_backend(s3_server: MotoS3Server) -> AsyncIterator[S3Backend]:
    chosen = S3Backend(s3_server)
    yield chosen
    await chosen.storage.aclose()
