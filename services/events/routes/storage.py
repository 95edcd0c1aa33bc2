"""`/v1/storage/<key>`: the local backend's signed URLs (GET downloads, PUT uploads), streamed both ways;
browsers may use them from any origin (CORS: `app.StorageCors`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from services.common import storage
from services.events.routes.deps import StorageServiceDep

router = APIRouter(prefix="/v1/storage", tags=["storage"])

MethodQuery = Annotated[str, Query(alias="method", max_length=8)]
ExpiresQuery = Annotated[int, Query()]
SignatureQuery = Annotated[str, Query(max_length=128)]
# An upload URL may carry a size limit of its own, covered by its signature.
MaxBytesQuery = Annotated[int | None, Query(ge=0)]


@router.get("/{key:path}")
async def download(
    key: str,
    service: StorageServiceDep,
    method: MethodQuery,
    expires: ExpiresQuery,
    signature: SignatureQuery,
) -> StreamingResponse:
    service.authorize(key, "GET", method, expires, signature)
    size, chunks = await service.open_read(key)
    # As an attachment: a browser sent here (an artifact's download from the dashboard) saves a file.
    headers = {"Content-Length": str(size), "Content-Disposition": storage.attachment(key)}
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


@router.put("/{key:path}", status_code=201)
async def upload(
    key: str,
    request: Request,
    service: StorageServiceDep,
    method: MethodQuery,
    expires: ExpiresQuery,
    signature: SignatureQuery,
    max_bytes: MaxBytesQuery = None,
) -> JSONResponse:
    service.authorize(key, "PUT", method, expires, signature, max_bytes)
    length = request.headers.get("content-length")
    declared = int(length) if length and length.isascii() and length.isdigit() else None
    chunks = (chunk async for chunk in request.stream() if chunk)
    info = await service.write(key, chunks, declared, max_bytes)
    return JSONResponse({"key": info.key, "size": info.size}, status_code=201)
