"""What only the S3 backend has: parts, aborted multipart uploads, settings, presigning without the network,
and botocore's errors in the storage vocabulary."""

from __future__ import annotations

import dataclasses
import uuid
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr, ValidationError

from services.common.s3_storage import MIN_PART_SIZE, S3Config, S3Storage
from services.common.settings import CommonSettings
from services.common.storage import (
    LocalStorage,
    ObjectTooLarge,
    StorageError,
    artifact_key,
    job_prefix,
    make_storage,
)
from tests.storage.conftest import BUCKET, SECRET_ACCESS_KEY, chunked, s3_settings


@pytest.mark.parametrize(
    ("size", "parts"),
    [(0, 0), (MIN_PART_SIZE, 0), (MIN_PART_SIZE + 1, 2), (2 * MIN_PART_SIZE + MIN_PART_SIZE // 2, 3)],
    ids=["empty", "one whole part", "a byte past one part", "two and a half parts"],
)
async def test_what_fits_in_one_part_goes_up_in_one_put_the_rest_in_parts(s3_backend, size, parts):
    key = artifact_key(uuid.uuid4().hex, "last.pt")
    await s3_backend.storage.put_stream(key, chunked(b"z" * size, size=1024 * 1024))
    etag = s3_backend.client.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')
    # A multipart object's ETag ends in the number of its parts.
    assert etag.endswith(f"-{parts}") if parts else "-" not in etag


async def test_a_refusal_after_parts_went_up_aborts_the_multipart_upload(s3_backend):
    job, limit = uuid.uuid4().hex, 2 * MIN_PART_SIZE + 1
    abort = mock.AsyncMock(wraps=s3_backend.storage._abort)
    with mock.patch.object(s3_backend.storage, "_abort", abort), pytest.raises(ObjectTooLarge):
        await s3_backend.storage.put_stream(
            artifact_key(job, "big.bin"), chunked(b"x" * (limit + 1), size=1024 * 1024), max_bytes=limit
        )
    abort.assert_awaited_once()
    assert await s3_backend.half_written(job_prefix(job)) == []


def test_make_storage_picks_the_backend_from_settings(s3_server, tmp_path):
    s3 = make_storage(s3_settings(s3_server.url))
    assert isinstance(s3, S3Storage)
    assert s3.bucket == BUCKET
    local = make_storage(CommonSettings(storage_local_dir=tmp_path))
    assert isinstance(local, LocalStorage)
    assert local.root == tmp_path.resolve()


def test_settings_refuse_an_incomplete_s3_configuration():
    with pytest.raises(ValidationError, match="STORAGE_S3_BUCKET"):
        CommonSettings(storage_backend="s3")
    with pytest.raises(ValidationError, match="both"):
        CommonSettings(storage_backend="s3", storage_s3_bucket=BUCKET, storage_s3_access_key_id="AKIA")


def test_the_secret_key_is_never_shown(s3_server):
    settings = s3_settings(s3_server.url)
    assert SECRET_ACCESS_KEY not in repr(settings)
    assert SECRET_ACCESS_KEY not in repr(S3Config.from_settings(settings))


def test_presigning_needs_no_network():
    """The scheduler presigns on its dispatch path: nothing listens at this endpoint, and no call is made."""
    config = S3Config(
        bucket="datasets",
        endpoint="http://127.0.0.1:9",
        access_key_id="AKIAEXAMPLE",
        secret_access_key=SecretStr(SECRET_ACCESS_KEY),
        path_style=True,
    )
    storage = S3Storage(config)
    url = urlsplit(storage.presign("jobs/j1/artifacts/best.pt", "PUT", 900))
    query = parse_qs(url.query)
    assert url.path == "/datasets/jobs/j1/artifacts/best.pt"
    assert query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-SignedHeaders"] == ["host"]
    assert SECRET_ACCESS_KEY not in url.geturl()
    # Longer than SigV4 allows: a week, rather than a URL S3 would refuse.
    a_month = parse_qs(urlsplit(storage.presign("jobs/j1/artifacts/best.pt", "GET", 30 * 86400)).query)
    assert a_month["X-Amz-Expires"] == [str(7 * 86400)]


async def test_s3_errors_are_storage_errors_without_credentials(s3_server):
    config = S3Config.from_settings(s3_settings(s3_server.url))
    storage = S3Storage(dataclasses.replace(config, bucket="no-such-bucket"))
    try:
        with pytest.raises(StorageError, match="NoSuchBucket") as refused:
            await storage.put_stream(artifact_key("j1", "best.pt"), chunked(b"x"))
        assert SECRET_ACCESS_KEY not in str(refused.value)
    finally:
        await storage.aclose()
