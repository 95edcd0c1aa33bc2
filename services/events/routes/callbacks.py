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
from services.events.routes.deps import CallbackDep

router = APIRouter(prefix="/v1/callbacks", tags=["callbacks"])
ACCEPTED = {"status_code": status.HTTP_202_ACCEPTED}


@router.post("/heartbeat")
async def heartbeat(callback: CallbackDep, body: HeartbeatCallback | None = None) -> HeartbeatAnswer:
    return await callback.service.heartbeat(callback.claims, callback.trace)


@router.post("/progress", **ACCEPTED)
async def progress(body: ProgressCallback, callback: CallbackDep) -> dict[str, bool]:
    await callback.service.progress(callback.claims, body, callback.trace)
    return {"accepted": True}


@router.post("/log", **ACCEPTED)
async def log(body: LogCallback, callback: CallbackDep) -> dict[str, bool]:
    await callback.service.log(callback.claims, body, callback.trace)
    return {"accepted": True}


@router.post("/artifacts")
async def request_artifact_upload(body: ArtifactUploadRequest, callback: CallbackDep) -> ArtifactUploadAnswer:
    return await callback.service.request_upload(callback.claims, body)


@router.post("/artifacts/complete", **ACCEPTED)
async def complete_artifact(body: ArtifactCompleteCallback, callback: CallbackDep) -> dict[str, bool]:
    await callback.service.complete_artifact(callback.claims, body, callback.trace)
    return {"accepted": True}


@router.post("/done", **ACCEPTED)
async def done(body: DoneCallback, callback: CallbackDep) -> dict[str, bool]:
    await callback.service.done(callback.claims, body, callback.trace)
    return {"accepted": True}
