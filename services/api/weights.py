"""The api's decisions about starting weights: taking in an uploaded model (a PyTorch file, kept at
`models/<id>/weights.pt`), and checking that what a job's `weights` names is the job's project's and exists:
one of its uploaded models, or an artifact of one of its jobs (`job:<job_id>/best.pt`). Functions take the
caller's session or connection and never commit."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, BinaryIO

import anyio
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from contracts.weights import job_artifact
from services.api import repository
from services.api.errors import BadRequest, InvalidField, NotFound, PayloadTooLarge
from services.api.models import UploadedModel
from services.common import storage as storage_keys
from services.common.storage import ObjectTooLarge, Storage

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
# `torch.save` writes a zip archive (since torch 1.6; Ultralytics checkpoints too): anything else is no model.
TORCH_FILE_MAGIC = b"PK\x03\x04"
CHUNK = 1024 * 1024


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise InvalidField(
            ("body", "name"), "a model name is 1-100 of A-Z a-z 0-9 _ . - (not starting with . - _)"
        )
    return name


async def upload(
    session: AsyncSession,
    storage: Storage,
    project_id: str,
    name: str,
    filename: str | None,
    file: BinaryIO,
    max_bytes: int,
    now: datetime,
) -> UploadedModel:
    """A model from a file sent with the request: checked to be a PyTorch file, streamed to storage."""
    check_name(name)
    size = await anyio.to_thread.run_sync(lambda: file.seek(0, 2))
    if size > max_bytes:
        raise PayloadTooLarge(f"model file is {size} bytes; the limit is {max_bytes} bytes")
    file.seek(0)
    if await anyio.to_thread.run_sync(file.read, len(TORCH_FILE_MAGIC)) != TORCH_FILE_MAGIC:
        raise BadRequest(
            "not a PyTorch file: a .pt written by torch.save (a model's state_dict, or a checkpoint)"
        )
    model_id = uuid.uuid4().hex
    key = storage_keys.model_key(model_id)
    digest = hashlib.sha256()
    try:
        info = await storage.put_stream(key, _hashed_chunks(file, digest), max_bytes=max_bytes)
    except ObjectTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from exc
    model = UploadedModel(
        id=model_id,
        project_id=project_id,
        name=name,
        filename=(filename or "weights.pt")[-255:],
        storage_key=key,
        size=info.size,
        sha256=digest.hexdigest(),
        created_at=now,
    )
    await repository.add_model(session, model)
    return model


async def _hashed_chunks(file: BinaryIO, digest: Any) -> AsyncIterator[bytes]:
    file.seek(0)
    while chunk := await anyio.to_thread.run_sync(file.read, CHUNK):
        digest.update(chunk)
        yield chunk


async def get(session: AsyncSession, project_id: str, model_id: str) -> UploadedModel:
    model = await repository.get_model(session, project_id, model_id)
    if model is None:
        raise NotFound(f"model {model_id} not found")
    return model


async def list_models(session: AsyncSession, project_id: str, limit: int) -> list[UploadedModel]:
    return await repository.list_models(session, project_id, limit)


async def check_reference(conn: AsyncConnection, project_id: str, reference: str) -> None:
    """Refuse (422 at `weights`) weights that are not the project's, or not there (yet)."""
    artifact = job_artifact(reference)
    if artifact is None:
        if not await repository.model_exists(conn, project_id, reference):
            raise InvalidField(("body", "weights"), f"model {reference} not found", "unknown_weights")
    elif not await repository.artifact_of_project_exists(conn, project_id, *artifact):
        job_id, name = artifact
        raise InvalidField(("body", "weights"), f"job {job_id} has no artifact {name!r}", "unknown_weights")
