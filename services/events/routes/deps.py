"""FastAPI dependencies of the events routes, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from services.common.tokens import CallbackClaims
from services.events.service import CallbackService, StorageService, Trace, verify_token


async def _callback_service(request: Request) -> CallbackService:
    return request.app.state.callbacks


async def _storage_service(request: Request) -> StorageService:
    return request.app.state.storage


async def _claims(request: Request, authorization: Annotated[str | None, Header()] = None) -> CallbackClaims:
    return verify_token(request.app.state.token_verifier, authorization)


async def _trace(traceparent: Annotated[str | None, Header()] = None) -> Trace:
    return Trace(traceparent=traceparent)


CallbackServiceDep = Annotated[CallbackService, Depends(_callback_service)]
StorageServiceDep = Annotated[StorageService, Depends(_storage_service)]
ClaimsDep = Annotated[CallbackClaims, Depends(_claims)]
TraceDep = Annotated[Trace, Depends(_trace)]
