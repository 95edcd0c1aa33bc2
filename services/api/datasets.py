"""The api's decisions about datasets: intake (an archive in storage becomes a new version, or the existing
version of the same archive), validation as a job, and which datasets a job may train on.

Every upload ends the same way (`_register`): under a lock on its name, the same archive already uploaded
under that name answers with that version; otherwise the archive is kept under `datasets/<id>/`, recorded as
the name's next version with status VALIDATING, and a validation job (`contracts.validation`) is submitted on
the validation pool. The read model moves the dataset on when that job ends (`follow_validation`).
Functions take the caller's session and never commit.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO, get_args

import anyio
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from contracts.commands import DatasetRef, SubmitJob
from contracts.datasets import DatasetFormat
from contracts.events import JobEvent
from contracts.jobs import EventType
from contracts.validation import DatasetValidationSpec, ValidationLimits, ValidationMetrics
from services.api import archives, repository
from services.api.errors import BadRequest, Conflict, InvalidField, NotFound, PayloadTooLarge
from services.api.messaging import CommandPublisher
from services.api.models import Dataset, DatasetStatus
from services.common import storage as storage_keys
from services.common.storage import ObjectNotFound, ObjectTooLarge, Storage
from telemetry import tracing

DATASET_FORMATS: tuple[str, ...] = get_args(DatasetFormat)
# Names are also references (`name`, `name:version`) and URL path segments: no `:`, `/` or spaces.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
UPLOAD_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
# Validation is deterministic: a retry helps only when the validation itself broke (a lost runner).
VALIDATION_MAX_ATTEMPTS = 3
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Intake:
    """What taking in a dataset needs, from the api's settings and connections."""

    storage: Storage
    publisher: CommandPublisher
    max_bytes: int
    validation_pool: str
    validation_limits: ValidationLimits
    upload_url_ttl: int


@dataclass(frozen=True)
class Registered:
    dataset: Dataset
    # False: the project already had this very archive under this name; `dataset` is that version.
    created: bool


@dataclass(frozen=True)
class UploadTicket:
    upload_id: str
    url: str
    expires_at: datetime
    max_bytes: int


@dataclass(frozen=True)
class _Stored:
    """An uploaded archive in storage, checked and hashed, not yet a dataset."""

    key: str
    size: int
    sha256: str
    filename: str  # the name it is kept under: safe, with the suffix of its kind


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise InvalidField(
            ("body", "name"),
            "a dataset name is 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return name


def check_format(dataset_format: str) -> str:
    if dataset_format not in DATASET_FORMATS:
        raise InvalidField(
            ("body", "format"),
            f"unsupported dataset format {dataset_format!r}; one of {list(DATASET_FORMATS)}",
        )
    return dataset_format


# Intake


def request_upload(intake: Intake, project_id: str, now: datetime) -> UploadTicket:
    """A signed PUT URL for one archive of at most `max_bytes`, under the project's uploads."""
    upload_id = uuid.uuid4().hex
    key = storage_keys.upload_key(project_id, upload_id)
    url = intake.storage.presign(key, "PUT", intake.upload_url_ttl, max_bytes=intake.max_bytes)
    expires_at = now + timedelta(seconds=intake.upload_url_ttl)
    return UploadTicket(upload_id, url, expires_at, intake.max_bytes)


async def create_from_file(
    session: AsyncSession,
    intake: Intake,
    project_id: str,
    name: str,
    dataset_format: str,
    filename: str | None,
    file: BinaryIO,
    now: datetime,
) -> Registered:
    """A dataset from an archive sent with the request (multipart): pre-checked, then streamed to storage."""
    check_name(name)
    check_format(dataset_format)
    size = await anyio.to_thread.run_sync(lambda: file.seek(0, 2))
    if size > intake.max_bytes:
        raise PayloadTooLarge(f"dataset archive is {size} bytes; the limit is {intake.max_bytes} bytes")
    try:
        kind = await anyio.to_thread.run_sync(archives.inspect, file, dataset_format, filename)
    except archives.InvalidArchive as exc:
        raise _refused(exc) from exc
    dataset_id = uuid.uuid4().hex
    stored_name = _safe_filename(filename, kind)
    key = storage_keys.dataset_key(dataset_id, stored_name)
    digest = hashlib.sha256()
    try:
        info = await intake.storage.put_stream(key, _chunks(file, digest), max_bytes=intake.max_bytes)
    except ObjectTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from exc
    stored = _Stored(key, info.size, digest.hexdigest(), stored_name)
    return await _register(session, intake, project_id, name, dataset_format, dataset_id, stored, now)


async def create_from_upload(
    session: AsyncSession,
    intake: Intake,
    project_id: str,
    name: str,
    dataset_format: str,
    upload_id: str,
    filename: str | None,
    now: datetime,
) -> Registered:
    """A dataset from an archive PUT to an upload URL: the api reads it once (its kind from the first bytes,
    its sha256), never holds it; its layout is for the validation job to judge."""
    check_name(name)
    check_format(dataset_format)
    if not UPLOAD_ID_PATTERN.match(upload_id):
        raise InvalidField(("body", "upload_id"), "not an upload id (see POST /v1/datasets/uploads)")
    key = storage_keys.upload_key(project_id, upload_id)
    try:
        info = await intake.storage.stat(key)
        if info.size > intake.max_bytes:  # the upload URL refuses more; this is for a changed limit
            await intake.storage.delete(key)
            raise PayloadTooLarge(f"dataset archive is {info.size} bytes; the limit is {intake.max_bytes}")
        kind, sha256 = await _inspect_object(intake.storage, key, filename)
    except ObjectNotFound:
        raise InvalidField(
            ("body", "upload_id"),
            f"nothing was uploaded for {upload_id}: PUT the archive to its upload URL first "
            "(an upload makes one dataset, once)",
            "not_found",
        ) from None
    except archives.InvalidArchive as exc:
        await intake.storage.delete(key)
        raise _refused(exc) from exc
    stored = _Stored(key, info.size, sha256, _safe_filename(filename, kind))
    return await _register(session, intake, project_id, name, dataset_format, uuid.uuid4().hex, stored, now)


async def _register(
    session: AsyncSession,
    intake: Intake,
    project_id: str,
    name: str,
    dataset_format: str,
    dataset_id: str,
    stored: _Stored,
    now: datetime,
) -> Registered:
    await repository.lock_dataset_name(session, project_id, name)
    existing = await repository.dataset_with_archive(session, project_id, name, stored.sha256)
    if existing is not None:
        await intake.storage.delete(stored.key)
        return Registered(existing, created=False)
    key = storage_keys.dataset_key(dataset_id, stored.filename)
    if stored.key != key:
        await intake.storage.move(stored.key, key)
    dataset = Dataset(
        id=dataset_id,
        project_id=project_id,
        name=name,
        version=await repository.next_dataset_version(session, project_id, name),
        format=dataset_format,
        filename=stored.filename,
        storage_key=key,
        size=stored.size,
        sha256=stored.sha256,
        status=DatasetStatus.VALIDATING.value,
        problem_count=0,
        validation_job_id=uuid.uuid4().hex,
        created_at=now,
    )
    await repository.add_dataset(session, dataset)
    try:
        await _start_validation(intake, dataset, now)
    except BaseException:
        # Nothing of the dataset stays; a signed upload goes back where it was, to be finalized again.
        if stored.key != key:
            await intake.storage.move(key, stored.key)
        else:
            await intake.storage.delete(key)
        raise
    return Registered(dataset, created=True)


async def _start_validation(intake: Intake, dataset: Dataset, now: datetime) -> None:
    """Publish the validation job's submit (awaiting the PubAck) before the dataset's row commits, as a job
    submit does: a dataset never waits on a job that was not submitted."""
    assert dataset.validation_job_id is not None
    command = SubmitJob(
        job_id=dataset.validation_job_id,
        project_id=dataset.project_id,
        name=f"validate {dataset.name}:{dataset.version}",
        spec=DatasetValidationSpec(framework="validation", limits=intake.validation_limits),
        dataset=dataset_ref(dataset),
        pool=intake.validation_pool,
        max_attempts=VALIDATION_MAX_ATTEMPTS,
        trace_id=tracing.new_trace_id(),
        submitted_at=now,
    )
    attributes = {"vtp.job_id": command.job_id, "vtp.dataset_id": dataset.id}
    with tracing.job_root("publish submit", command.trace_id, attributes):
        [refusal] = await intake.publisher.submit_many([command])
    if refusal is not None:
        raise refusal


def _refused(exc: archives.InvalidArchive) -> BadRequest:
    return BadRequest(str(exc), {"field": "file", "message": str(exc)})


def _safe_filename(filename: str | None, kind: archives.ArchiveKind) -> str:
    base = re.sub(r"[^A-Za-z0-9_.\-]", "_", (filename or "").rsplit("/", 1)[-1]).lstrip(".")
    extension = ".zip" if kind == "zip" else ".tar.gz"
    if not base.endswith(extension) and not (kind == "tar.gz" and base.endswith(".tgz")):
        base = (base or "dataset") + extension
    return base[-200:]


async def _chunks(file: BinaryIO, digest: Any) -> AsyncIterator[bytes]:
    file.seek(0)
    while chunk := await anyio.to_thread.run_sync(file.read, CHUNK):
        digest.update(chunk)
        yield chunk


async def _inspect_object(
    storage: Storage, key: str, filename: str | None
) -> tuple[archives.ArchiveKind, str]:
    """The archive kind (from its first bytes; refused if not an archive or not what its name says) and the
    sha256 of a stored object, read once as a stream."""
    digest = hashlib.sha256()
    kind: archives.ArchiveKind | None = None
    async for chunk in storage.read_stream(key):
        if kind is None:
            kind = archives.archive_kind(io.BytesIO(chunk))
            archives.check_name(filename, kind)
        digest.update(chunk)
    if kind is None:
        raise archives.InvalidArchive("the upload is empty")
    return kind, digest.hexdigest()


# Reading


async def get(session: AsyncSession, project_id: str, reference: str) -> Dataset:
    """By id, `name:version`, or `name` (its newest version, whatever its status)."""
    dataset = await find(session, project_id, reference)
    if dataset is None:
        raise NotFound(f"dataset {reference} not found")
    return dataset


async def list_datasets(
    session: AsyncSession, project_id: str, name: str | None, limit: int
) -> list[Dataset]:
    return await repository.list_datasets(session, project_id, name, limit)


async def find(
    db: AsyncConnection | AsyncSession, project_id: str, reference: str, status: DatasetStatus | None = None
) -> Dataset | None:
    """A dataset by id, else by `name:version`, else by `name` (its newest version of `status`, if given)."""
    dataset = await repository.find_dataset(db, project_id, dataset_id=reference)
    if dataset is not None:
        return dataset
    name, version = parse_reference(reference)
    return await repository.find_dataset(db, project_id, name=name, version=version, status=status)


def parse_reference(reference: str) -> tuple[str, int | None]:
    """`shapes:2` -> ("shapes", 2); `shapes` -> ("shapes", None)."""
    name, colon, version = reference.rpartition(":")
    if colon and version.isascii() and version.isdigit() and len(version) <= 9:  # what an int column holds
        return name, int(version)
    return reference, None


# Training on a dataset


def dataset_ref(dataset: Dataset) -> DatasetRef:
    return DatasetRef(
        id=dataset.id, format=dataset.format, storage_key=dataset.storage_key, version=dataset.version
    )


async def usable(conn: AsyncConnection, project_id: str, reference: str) -> tuple[DatasetRef, bool]:
    """The READY dataset a job's `dataset` names (an id, `name:version`, or `name`: its newest READY version)
    and whether that reference always names it (true but for a bare name, whose newest version may change).
    A dataset that is not READY is refused with its status."""
    dataset = await find(conn, project_id, reference, DatasetStatus.READY)
    if dataset is None:
        dataset = await find(conn, project_id, reference)  # to say why it cannot be used
    if dataset is None:
        raise InvalidField(("body", "dataset"), f"dataset {reference} not found", "not_found")
    if dataset.status != DatasetStatus.READY:
        raise not_ready(dataset)
    lasting = reference == dataset.id or parse_reference(reference)[1] is not None
    return dataset_ref(dataset), lasting


def not_ready(dataset: Dataset) -> Conflict:
    why = {
        DatasetStatus.VALIDATING: "its validation has not finished yet; wait until it is READY",
        DatasetStatus.REJECTED: f"its validation found {dataset.problem_count} problem(s); fix them and "
        "upload a new version",
        DatasetStatus.FAILED: f"its validation could not run ({dataset.reason}); upload it again",
    }.get(DatasetStatus(dataset.status), "")
    message = f"dataset {dataset.name}:{dataset.version} ({dataset.id}) is {dataset.status}, not READY: {why}"
    return Conflict(
        message,
        {"field": ["body", "dataset"], "dataset": dataset.id, "status": dataset.status, "message": message},
    )


# Read model: a dataset follows its validation job


async def follow_validation(conn: AsyncConnection, event: JobEvent) -> None:
    """When a dataset's validation job ends, record the verdict: READY or REJECTED (with the problems) when
    it succeeded, FAILED with the reason when it failed or was cancelled. Any other job's terminal event
    matches no dataset and changes nothing."""
    if event.type == EventType.SUCCEEDED:
        try:
            verdict = ValidationMetrics.model_validate(event.payload.get("metrics") or {})
        except ValidationError:
            values = _failed("the validation job reported no verdict")
        else:
            values = {
                "status": verdict.status,
                "content_hash": verdict.content_hash,
                "summary": verdict.summary,
                "problems": verdict.problems,
                "problem_count": verdict.problem_count,
            }
    elif event.type in (EventType.FAILED, EventType.CANCELLED):
        ended = "failed" if event.type == EventType.FAILED else "was cancelled"
        values = _failed(f"the validation job {ended}: {event.payload.get('reason') or 'no reason given'}")
    else:
        return
    if not await repository.settle_validation(conn, event.job_id, values):
        if not await repository.dataset_of_validation_exists(conn, event.job_id):
            raise DatasetNotCommitted(event.job_id)


class DatasetNotCommitted(Exception):
    """A validation job ended before its dataset's row committed (the job is submitted first, so that no
    dataset ever waits on a job that was never submitted): its verdict must be recorded later, not lost."""


def _failed(reason: str) -> dict[str, Any]:
    return {"status": DatasetStatus.FAILED.value, "reason": reason}
