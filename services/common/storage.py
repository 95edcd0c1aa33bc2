"""Object storage. The local backend keeps objects under a folder and hands out HMAC-signed, expiring URLs
served by the events service (`/v1/storage/<key>`); an S3 backend (presigned URLs) plugs in behind the same
interface. Keys are validated so nothing a client or trainer sends can escape its prefix."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import quote, urlencode

import anyio

Method = Literal["GET", "PUT"]
_KEY_PART = re.compile(r"^[A-Za-z0-9_.\-]+$")
CHUNK = 1024 * 1024


class StorageError(Exception):
    """Base of storage failures."""


class InvalidKey(StorageError):
    """A key that is empty, absolute, has `..` or characters outside [A-Za-z0-9_.-/]."""


class ObjectNotFound(StorageError):
    pass


class ObjectTooLarge(StorageError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"object exceeds the size limit of {limit} bytes")
        self.limit = limit


class BadSignature(StorageError):
    """A signed URL that is expired, tampered with, or for another key or method."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


def validate_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") or not _KEY_PART.match(p) for p in parts):
        raise InvalidKey(f"invalid object key: {key!r}")
    return key


def dataset_key(dataset_id: str, filename: str) -> str:
    return validate_key(f"datasets/{dataset_id}/{filename}")


def artifact_key(job_id: str, name: str) -> str:
    return validate_key(f"jobs/{job_id}/artifacts/{name}")


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


class Storage(Protocol):
    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], max_bytes: int | None = None
    ) -> ObjectInfo: ...
    def read_stream(self, key: str) -> AsyncIterator[bytes]: ...
    async def stat(self, key: str) -> ObjectInfo: ...
    async def list(self, prefix: str) -> list[ObjectInfo]: ...
    def presign(self, key: str, method: Method, ttl_seconds: int) -> str: ...


class UrlSigner:
    """HMAC signatures for local-storage URLs: bound to one key, one method and an expiry."""

    def __init__(self, secret: str, base_url: str) -> None:
        self._secret = secret.encode()
        self._base_url = base_url.rstrip("/")

    def _signature(self, key: str, method: str, expires: int) -> str:
        message = f"{method}\n{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, key: str, method: Method, ttl_seconds: int, now: float | None = None) -> str:
        validate_key(key)
        expires = int((now if now is not None else time.time()) + ttl_seconds)
        query = urlencode(
            {"method": method, "expires": expires, "signature": self._signature(key, method, expires)}
        )
        return f"{self._base_url}/v1/storage/{quote(key)}?{query}"

    def verify(self, key: str, method: str, expires: int, signature: str, now: float | None = None) -> None:
        validate_key(key)
        if expires < (now if now is not None else time.time()):
            raise BadSignature("signed URL expired")
        if not hmac.compare_digest(self._signature(key, method, expires), signature):
            raise BadSignature("signed URL signature does not match this key and method")


class LocalStorage:
    def __init__(self, root: Path, signer: UrlSigner) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.signer = signer

    def _path(self, key: str) -> Path:
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"invalid object key: {key!r}")
        return path

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], max_bytes: int | None = None
    ) -> ObjectInfo:
        """Write to a temporary file and rename: a reader never sees half an object, a crash leaves none."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        size = 0
        try:
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise ObjectTooLarge(max_bytes)
                    await out.write(chunk)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return ObjectInfo(key=key, size=size)

    async def read_stream(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        async with await anyio.open_file(path, "rb") as source:
            while chunk := await source.read(CHUNK):
                yield chunk

    async def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return ObjectInfo(key=key, size=path.stat().st_size)

    async def list(self, prefix: str) -> list[ObjectInfo]:
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        return sorted(
            (
                ObjectInfo(key=p.relative_to(self.root).as_posix(), size=p.stat().st_size)
                for p in folder.rglob("*")
                if p.is_file() and not p.name.endswith(".partial")
            ),
            key=lambda info: info.key,
        )

    def presign(self, key: str, method: Method, ttl_seconds: int) -> str:
        return self.signer.sign(key, method, ttl_seconds)


def make_storage(storage_dir: Path, signing_key: str, events_url: str) -> Storage:
    return LocalStorage(storage_dir, UrlSigner(signing_key, events_url))
