"""`/v1/callbacks/*`: trainer -> events. The job id and attempt come from the token, never from the body."""

from __future__ import annotations

from fastapi import APIRouter, status

from contracts.callbacks import (
    ArtifactCompleteCallback,
    ArtifactUploadAnswer,
    ArtifactUploadRequest,
    DoneCallback,
    HeartbeatAnswer,
    HeartbeatCallback,
    LogCallback,
    ProgressCallback,
)
from services.events.routes.deps import CallbackServiceDep, ClaimsDep, TraceDep

router = APIRouter(prefix="/v1/callbacks", tags=["callbacks"])
ACCEPTED = {"status_code": status.HTTP_202_ACCEPTED}


@router.post("/heartbeat")
async def heartbeat(
    claims: ClaimsDep, service: CallbackServiceDep, trace: TraceDep, body: HeartbeatCallback | None = None
) -> HeartbeatAnswer:
    return await service.heartbeat(claims, trace)


@router.post("/progress", **ACCEPTED)
async def progress(
    body: ProgressCallback, claims: ClaimsDep, service: CallbackServiceDep, trace: TraceDep
) -> dict[str, bool]:
    await service.progress(claims, body, trace)
    return {"accepted": True}


@router.post("/log", **ACCEPTED)
async def log(
    body: LogCallback, claims: ClaimsDep, service: CallbackServiceDep, trace: TraceDep
) -> dict[str, bool]:
    await service.log(claims, body, trace)
    return {"accepted": True}


@router.post("/artifacts")
async def request_artifact_upload(
    body: ArtifactUploadRequest, claims: ClaimsDep, service: CallbackServiceDep
) -> ArtifactUploadAnswer:
    return await service.request_upload(claims, body)


@router.post("/artifacts/complete", **ACCEPTED)
async def complete_artifact(
    body: ArtifactCompleteCallback, claims: ClaimsDep, service: CallbackServiceDep, trace: TraceDep
) -> dict[str, bool]:
    await service.complete_artifact(claims, body, trace)
    return {"accepted": True}


@router.post("/done", **ACCEPTED)
async def done(
    body: DoneCallback, claims: ClaimsDep, service: CallbackServiceDep, trace: TraceDep
) -> dict[str, bool]:
    await service.done(claims, body, trace)
    return {"accepted": True}
