"""FastAPI dependencies of the events routes, as `Annotated` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from opentelemetry.context import Context

from services.common.tokens import CallbackClaims
from services.events.service import CallbackService, StorageService, verify_token
from telemetry import tracing


@dataclass(frozen=True)
class Callback:
    """What every callback route needs: the verified claims, the service and the trainer's trace context
    (the request span's, or the `traceparent` the trainer sent when requests are not traced)."""

    claims: CallbackClaims
    service: CallbackService
    trace: Context


async def _callback(request: Request) -> Callback:
    """`Authorization: Bearer <callback token>` (from the job's dispatch message) and `traceparent`."""
    # Every trainer callback resolves this: one dependency reading the headers directly costs a callback
    # measurably less CPU than one dependency (and header parameter) per part.
    headers = request.headers
    state = request.app.state
    claims = request.scope.get("auth")
    if not isinstance(claims, CallbackClaims):  # the request guard verifies the token before the body
        claims = verify_token(state.token_verifier, headers.get("authorization"))
    return Callback(
        claims=claims,
        service=state.callbacks,
        trace=tracing.incoming(headers),
    )


async def _storage_service(request: Request) -> StorageService:
    return request.app.state.storage


CallbackDep = Annotated[Callback, Depends(_callback)]
StorageServiceDep = Annotated[StorageService, Depends(_storage_service)]
