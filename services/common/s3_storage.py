"""The S3 backend of `Storage` (aioboto3): any S3-compatible service by endpoint (AWS S3, MinIO, R2).

Objects go up in one PUT when they fit in one part, otherwise as a multipart upload that is aborted on any
failure, so a refused or broken upload leaves nothing behind. Presigned URLs are SigV4 query signatures: one
key, one method, an expiry; made by a synchronous botocore client without a network round trip, since the
scheduler presigns on its dispatch path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aioboto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from services.common.storage import (
    CHUNK,
    Method,
    ObjectInfo,
    ObjectNotFound,
    ObjectTooLarge,
    StorageError,
    attachment,
    validate_key,
)

if TYPE_CHECKING:
    from services.common.settings import CommonSettings

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# S3's smallest part (all but the last); 8 MiB parts keep an upload's memory small and reach 78 GiB in the
# 10,000 parts S3 allows.
MIN_PART_SIZE = 5 * MiB
DEFAULT_PART_SIZE = 8 * MiB
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_OPERATIONS = {"GET": "get_object", "PUT": "put_object"}
# SigV4 refuses a presigned URL that asks for more than a week: a shorter URL beats one that never works.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class S3Config:
    """Where the bucket is and how to reach it. No credentials: botocore's own chain (AWS_* variables, a web
    identity or instance role)."""

    bucket: str
    region: str = "us-east-1"
    endpoint: str | None = None  # None: AWS S3 itself
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    # MinIO and most self-hosted endpoints serve buckets as a path, not as a host name.
    path_style: bool = False

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> S3Config:
        if not settings.storage_s3_bucket:
            raise ValueError("STORAGE_S3_BUCKET must be set when STORAGE_BACKEND=s3")
        return cls(
            bucket=settings.storage_s3_bucket,
            region=settings.storage_s3_region,
            endpoint=settings.storage_s3_endpoint,
            access_key_id=settings.storage_s3_access_key_id,
            secret_access_key=settings.storage_s3_secret_access_key,
            path_style=settings.storage_s3_path_style,
        )

    def client_args(self) -> dict[str, Any]:
        secret = self.secret_access_key.get_secret_value() if self.secret_access_key else None
        return {
            "endpoint_url": self.endpoint,
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": secret,
            "config": Config(
                signature_version="s3v4",
                s3={"addressing_style": "path" if self.path_style else "auto"},
                retries={"mode": "standard"},
                # Checksums only where S3 requires them: several S3-compatible services refuse the ones newer
                # botocore adds to every upload by default.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        }


class S3Storage:
    """One long-lived client per instance, opened on first use in the running event loop; `aclose` ends it."""

    def __init__(self, config: S3Config, part_size: int = DEFAULT_PART_SIZE) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts are at least {MIN_PART_SIZE} bytes")
        self.bucket = config.bucket
        self.part_size = part_size
        self._client_args = config.client_args()
        self._session = aioboto3.Session()
        self._presigner = botocore.session.get_session().create_client("s3", **self._client_args)
        self._client: Any = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._opening = asyncio.Lock()

    async def _s3(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._opening:
            if self._client is None:
                stack = contextlib.AsyncExitStack()
                self._client = await stack.enter_async_context(
                    self._session.client("s3", **self._client_args)
                )
                self._exit_stack = stack
        return self._client

    async def aclose(self) -> None:
        stack, self._exit_stack, self._client = self._exit_stack, None, None
        if stack is not None:
            await stack.aclose()

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], max_bytes: int | None = None
    ) -> ObjectInfo:
        validate_key(key)
        s3 = await self._s3()
        parts = _parts(chunks, self.part_size, max_bytes)
        first = await anext(parts, b"")
        second = await anext(parts, None) if len(first) == self.part_size else None
        if second is None:
            with _storage_errors(key):
                await s3.put_object(Bucket=self.bucket, Key=key, Body=first)
            return ObjectInfo(key=key, size=len(first))
        return await self._put_in_parts(s3, key, _prepend((first, second), parts))

    async def _put_in_parts(self, s3: Any, key: str, parts: AsyncIterator[bytes]) -> ObjectInfo:
        with _storage_errors(key):
            upload_id = (await s3.create_multipart_upload(Bucket=self.bucket, Key=key))["UploadId"]
        done: list[dict[str, Any]] = []
        size = 0
        try:
            with _storage_errors(key):
                async for number, part in _numbered(parts):
                    answer = await s3.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
                    )
                    done.append({"PartNumber": number, "ETag": answer["ETag"]})
                    size += len(part)
                await s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
                )
        except BaseException:
            # Also on cancellation: the parts already sent are stored (and billed) until aborted.
            await self._abort(s3, key, upload_id)
            raise
        return ObjectInfo(key=key, size=size)

    async def _abort(self, s3: Any, key: str, upload_id: str) -> None:
        try:
            await asyncio.shield(s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id))
        except (BotoCoreError, ClientError) as exc:
            # The bucket's AbortIncompleteMultipartUpload lifecycle rule is the backstop (see README).
            log.warning("could not abort the multipart upload of %s: %s", key, exc)

    async def read_stream(self, key: str) -> AsyncIterator[bytes]:
        validate_key(key)
        s3 = await self._s3()
        with _storage_errors(key):
            body = (await s3.get_object(Bucket=self.bucket, Key=key))["Body"]
            async with body:  # releases the connection, also when the reader stops early
                async for chunk in body.iter_chunks(CHUNK):
                    yield chunk

    async def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        s3 = await self._s3()
        with _storage_errors(key):
            answer = await s3.head_object(Bucket=self.bucket, Key=key)
        return ObjectInfo(key=key, size=answer["ContentLength"])

    async def list(self, prefix: str) -> list[ObjectInfo]:
        # As the local backend: the prefix is a folder, so `jobs/a` never lists `jobs/ab/...`.
        folder = validate_key(prefix.rstrip("/")) + "/"
        s3 = await self._s3()
        found: list[ObjectInfo] = []
        with _storage_errors(prefix):
            async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
                found.extend(
                    ObjectInfo(key=item["Key"], size=item["Size"], modified=item["LastModified"])
                    for item in page.get("Contents", ())
                )
        return sorted(found, key=lambda info: info.key)

    async def delete(self, key: str) -> None:
        validate_key(key)
        s3 = await self._s3()
        with _storage_errors(key):
            await s3.delete_object(Bucket=self.bucket, Key=key)

    async def move(self, source: str, target: str) -> None:
        """Copy, then delete: S3 has no rename. The managed copy goes in parts past its threshold (a single
        copy stops at 5 GiB) and aborts them on failure."""
        validate_key(source)
        validate_key(target)
        s3 = await self._s3()
        with _storage_errors(source):
            await s3.copy({"Bucket": self.bucket, "Key": source}, self.bucket, target)
            await s3.delete_object(Bucket=self.bucket, Key=source)

    def presign(self, key: str, method: Method, ttl_seconds: int, max_bytes: int | None = None) -> str:
        """A URL for this one key and method until `ttl_seconds` from now (a week at most). A presigned PUT
        cannot carry a size limit (S3 takes up to 5 GiB in one PUT): `max_bytes` is for whoever takes the
        object to check, as the api does when a dataset upload is registered. A GET answers as an
        attachment, as the local backend's does (the signature covers it)."""
        params = {"Bucket": self.bucket, "Key": validate_key(key)}
        if method == "GET":
            params["ResponseContentDisposition"] = attachment(key)
        url: str = self._presigner.generate_presigned_url(
            _OPERATIONS[method], Params=params, ExpiresIn=min(ttl_seconds, MAX_PRESIGN_SECONDS)
        )
        return url


async def _parts(chunks: AsyncIterator[bytes], part_size: int, max_bytes: int | None) -> AsyncIterator[bytes]:
    """The stream cut into parts of exactly `part_size` (the last one shorter), refused past `max_bytes`."""
    buffer = bytearray()
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise ObjectTooLarge(max_bytes)
        buffer += chunk
        while len(buffer) >= part_size:
            yield bytes(buffer[:part_size])
            del buffer[:part_size]
    if buffer:
        yield bytes(buffer)


async def _prepend(first: tuple[bytes, ...], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for part in first:
        yield part
    async for part in rest:
        yield part


async def _numbered(parts: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    number = 0
    async for part in parts:
        number += 1
        yield number, part


@contextlib.contextmanager
def _storage_errors(key: str) -> Iterator[None]:
    """botocore's errors in the storage vocabulary: a missing object is `ObjectNotFound`, the rest
    `StorageError` (with S3's error code, never a credential)."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND:
            raise ObjectNotFound(key) from None
        raise StorageError(f"S3 refused {exc.operation_name} on {key!r}: {code}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"S3 unreachable for {key!r}: {type(exc).__name__}") from exc
