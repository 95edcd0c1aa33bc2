"""Object storage. The local backend keeps objects under a folder and hands out HMAC-signed, expiring URLs
served by the events service (`/v1/storage/<key>`); the S3 backend (`s3_storage`, presigned URLs) plugs in
behind the same interface. Keys are validated so nothing a client or trainer sends can escape its prefix."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import quote, urlencode

import anyio

from contracts.weights import job_artifact

if TYPE_CHECKING:
    from services.common.settings import CommonSettings

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
    # When the object was last written: given by `list` (what the upload sweeper reads), not compared.
    modified: datetime | None = field(default=None, compare=False)


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


def model_key(model_id: str) -> str:
    """An uploaded model's weights (`POST /v1/models`)."""
    return validate_key(f"models/{model_id}/weights.pt")


def weights_key(reference: str) -> str:
    """Where a job's starting weights live: an uploaded model, or an earlier job's artifact."""
    if (artifact := job_artifact(reference)) is not None:
        return artifact_key(*artifact)
    return model_key(reference)


def attachment(key: str) -> str:
    """The `Content-Disposition` a signed GET answers with, both backends: a browser following the URL saves
    the object as a file named for the key's last part (an artifact's name). A key needs no quoting."""
    return f'attachment; filename="{validate_key(key).rsplit("/", 1)[-1]}"'


def upload_key(project_id: str, upload_id: str) -> str:
    """Where a client PUTs a dataset archive before `POST /v1/datasets` takes it: under its project, so an
    upload id is only ever usable by the project that asked for it."""
    return validate_key(f"uploads/{project_id}/{upload_id}")


class Storage(Protocol):
    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], max_bytes: int | None = None
    ) -> ObjectInfo: ...
    def read_stream(self, key: str) -> AsyncIterator[bytes]: ...
    async def stat(self, key: str) -> ObjectInfo: ...
    async def list(self, prefix: str) -> list[ObjectInfo]: ...
    async def delete(self, key: str) -> None: ...
    async def move(self, source: str, target: str) -> None: ...
    def presign(self, key: str, method: Method, ttl_seconds: int, max_bytes: int | None = None) -> str: ...
    async def aclose(self) -> None: ...


class UrlSigner:
    """HMAC signatures for local-storage URLs: bound to one key, one method and an expiry, and for an upload
    optionally to a size limit (`max_bytes`, which the URL then carries)."""

    def __init__(self, secret: str, base_url: str) -> None:
        self._secret = secret.encode()
        self._base_url = base_url.rstrip("/")

    def _signature(self, key: str, method: str, expires: int, max_bytes: int | None = None) -> str:
        # Without a size limit the message is what it always was, so URLs signed before stay valid.
        limit = "" if max_bytes is None else f"\n{max_bytes}"
        message = f"{method}\n{key}\n{expires}{limit}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(
        self,
        key: str,
        method: Method,
        ttl_seconds: int,
        now: float | None = None,
        max_bytes: int | None = None,
    ) -> str:
        validate_key(key)
        expires = int((now if now is not None else time.time()) + ttl_seconds)
        query: dict[str, str | int] = {"method": method, "expires": expires}
        if max_bytes is not None:
            query["max_bytes"] = max_bytes
        query["signature"] = self._signature(key, method, expires, max_bytes)
        return f"{self._base_url}/v1/storage/{quote(key)}?{urlencode(query)}"

    def verify(
        self,
        key: str,
        method: str,
        expires: int,
        signature: str,
        now: float | None = None,
        max_bytes: int | None = None,
    ) -> None:
        validate_key(key)
        if expires < (now if now is not None else time.time()):
            raise BadSignature("signed URL expired")
        if not hmac.compare_digest(self._signature(key, method, expires, max_bytes), signature):
            raise BadSignature("signed URL signature does not match this key and method")


def _listed(key: str, stat: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key=key, size=stat.st_size, modified=datetime.fromtimestamp(stat.st_mtime, UTC))


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
                _listed(p.relative_to(self.root).as_posix(), p.stat())
                for p in folder.rglob("*")
                if p.is_file() and not p.name.endswith(".partial")
            ),
            key=lambda info: info.key,
        )

    async def delete(self, key: str) -> None:
        """Remove the object (gone already: nothing to do) and the folders it leaves empty."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._remove_empty_parents(path)

    async def move(self, source: str, target: str) -> None:
        """Within one file system: a rename, so the object is never half in either place."""
        source_path, target_path = self._path(source), self._path(target)
        if not source_path.is_file():
            raise ObjectNotFound(source)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source_path, target_path)
        self._remove_empty_parents(source_path)

    def _remove_empty_parents(self, path: Path) -> None:
        for folder in path.parents:
            if folder == self.root or not folder.is_relative_to(self.root):
                return
            try:
                folder.rmdir()
            except FileNotFoundError:
                continue
            except OSError:  # not empty: nor are the folders above it
                return

    def presign(self, key: str, method: Method, ttl_seconds: int, max_bytes: int | None = None) -> str:
        return self.signer.sign(key, method, ttl_seconds, max_bytes=max_bytes)

    async def aclose(self) -> None:
        """Nothing is held open between calls."""


def make_storage(settings: CommonSettings) -> Storage:
    if settings.storage_backend == "s3":
        # Imported here: it imports this module, and only an S3 deployment pays for loading aioboto3.
        from services.common.s3_storage import S3Config, S3Storage

        return S3Storage(S3Config.from_settings(settings))
    return LocalStorage(settings.storage_dir, UrlSigner(settings.storage_signing_key, settings.events_url))
