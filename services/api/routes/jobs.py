"""`/v1/jobs`: submit, read, list, cancel; artifacts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from contracts.base import StorableStr
from contracts.jobs import JobState
from services.api import service
from services.api.deps import (
    CurrentProject,
    FeedDep,
    PoolsDep,
    PublisherDep,
    SessionDep,
    SettingsDep,
    StorageDep,
    SubmittingDep,
)
from services.api.errors import NotFound
from services.api.metrics_history import metrics_history
from services.api.models import Artifact
from services.api.pending import pending_of
from services.api.routes.params import ArtifactName, Cursor, Framework, JobId, Pool
from services.api.schemas import (
    ArtifactOut,
    ArtifactUrl,
    ErrorOut,
    JobCreate,
    JobOut,
    JobPage,
    MetricsHistory,
)
from services.common.storage import InvalidKey, ObjectInfo, ObjectNotFound, Storage

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
ERRORS = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}}
IDEMPOTENCY_KEY_MAX_LENGTH = 255


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: StorableStr | None = Field(default=None, max_length=1000)


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses=ERRORS,
)
async def submit_job(
    body: JobCreate,
    project: CurrentProject,
    submitting: SubmittingDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
    ] = None,
) -> Response:
    """Submit a training job. It is accepted (202) once the submit command is durably queued; follow it at
    `Location` or over `/v1/jobs/{id}/events`. With `Idempotency-Key`, a retry returns the same job
    (`Idempotent-Replayed: true`), also when retries race."""
    result = await service.submit_job(submitting, project.id, body, idempotency_key, datetime.now(UTC))
    # The hot path: serialized once here rather than validated again against `response_model` (which
    # still documents the body). A replay answers like the original request (202), marked so a client
    # can tell.
    return Response(
        JobOut.of_row(result.row).model_dump_json(),
        status_code=202,
        media_type="application/json",
        headers={
            "Location": f"/v1/jobs/{result.row['id']}",
            "Idempotent-Replayed": "false" if result.created else "true",
        },
    )


@router.get("", response_model=JobPage, responses=ERRORS)
async def list_jobs(
    project: CurrentProject,
    session: SessionDep,
    pools: PoolsDep,
    state: JobState | None = None,
    framework: Framework = None,
    pool: Pool = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> JobPage:
    """Jobs of the caller's project, newest first, the QUEUED ones with their `queue_position` and
    `pending_reason`; `state`, `framework` and `pool` narrow the list. The platform's own dataset validation
    jobs are listed only when asked for (`framework=validation`)."""
    jobs, next_cursor = await service.list_jobs(session, project.id, state, limit, cursor, framework, pool)
    waiting = await pending_of(await session.connection(), pools, jobs, datetime.now(UTC))
    return JobPage(items=[JobOut.of(job, waiting.get(job.id)) for job in jobs], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=ERRORS)
async def get_job(job_id: JobId, project: CurrentProject, session: SessionDep, pools: PoolsDep) -> JobOut:
    """The job; a QUEUED one with its `queue_position` and `pending_reason`."""
    job = await service.get_job(session, project.id, job_id)
    waiting = await pending_of(await session.connection(), pools, [job], datetime.now(UTC))
    return JobOut.of(job, waiting.get(job.id))


@router.get("/{job_id}/metrics", response_model=MetricsHistory, responses=ERRORS)
async def job_metrics(
    job_id: JobId, project: CurrentProject, session: SessionDep, feed: FeedDep
) -> MetricsHistory:
    """Every metric of every epoch of the job (all attempts; an epoch once, as its last attempt had it),
    with where each attempt began: series ready to plot."""
    job = await service.get_job(session, project.id, job_id)
    return await metrics_history(feed, job.id)


@router.post(
    "/{job_id}/cancel", status_code=202, response_model=JobOut, responses={**ERRORS, 409: {"model": ErrorOut}}
)
async def cancel_job(
    job_id: JobId,
    project: CurrentProject,
    session: SessionDep,
    publisher: PublisherDep,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> JobOut:
    """Ask for the job to stop. 409 when it already finished."""
    reason = body.reason if body and body.reason else "cancelled by user"
    job = await service.cancel_job(session, publisher, project.id, job_id, reason, datetime.now(UTC))
    return JobOut.of(job)


@router.get("/{job_id}/artifacts", response_model=list[ArtifactOut], responses=ERRORS)
async def list_artifacts(job_id: JobId, project: CurrentProject, session: SessionDep) -> list[ArtifactOut]:
    """The job's artifacts by name (a bare list: a job has few)."""
    artifacts = await service.list_artifacts(session, project.id, job_id)
    return [ArtifactOut.of(artifact) for artifact in artifacts]


@router.get(
    "/{job_id}/artifacts/{name}",
    response_class=StreamingResponse,
    responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}}},
)
async def download_artifact(
    job_id: JobId, name: ArtifactName, project: CurrentProject, session: SessionDep, storage: StorageDep
) -> StreamingResponse:
    """The file, streamed through the api (with the key). A browser, whose link cannot carry the key,
    follows a signed URL instead (`GET /v1/jobs/{id}/artifacts/{name}/url`)."""
    artifact = await service.get_artifact(session, project.id, job_id, name)
    info = await _stored(storage, artifact)
    return StreamingResponse(
        storage.read_stream(artifact.storage_key),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(info.size),
            "Content-Disposition": f'attachment; filename="{artifact.name}"',
            "X-Checksum-SHA256": artifact.sha256,
        },
    )


@router.get("/{job_id}/artifacts/{name}/url", response_model=ArtifactUrl, responses=ERRORS)
async def artifact_url(
    job_id: JobId,
    name: ArtifactName,
    project: CurrentProject,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> ArtifactUrl:
    """A short-lived signed URL (`VTP_DOWNLOAD_URL_TTL`, 5 minutes) that downloads the artifact straight from
    storage without a key, as an attachment named for it: a browser navigates to it and saves the file."""
    artifact = await service.get_artifact(session, project.id, job_id, name)
    await _stored(storage, artifact)
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.download_url_ttl)
    url = storage.presign(artifact.storage_key, "GET", settings.download_url_ttl)
    return ArtifactUrl(url=url, expires_at=expires_at)


async def _stored(storage: Storage, artifact: Artifact) -> ObjectInfo:
    try:
        return await storage.stat(artifact.storage_key)
    except (ObjectNotFound, InvalidKey) as exc:
        raise NotFound(
            f"artifact {artifact.name!r} of job {artifact.job_id} is recorded but its file is missing"
        ) from exc
