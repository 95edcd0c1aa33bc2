"""Liveness (`/healthz`: the process answers; asks no dependency) and readiness (`/readyz`: Postgres and
NATS answer now, or 503 naming the one that does not). No authentication."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.common import http_health
from services.common.http_health import READINESS_RESPONSES

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    """Liveness; NATS connectivity shown, not required (it reconnects by itself)."""
    nc = request.app.state.nats
    return {"status": "ok", "nats": "connected" if nc.is_connected else "disconnected"}


@router.get("/readyz", responses=READINESS_RESPONSES)
async def readyz(request: Request) -> Response:
    """200 when Postgres and NATS both answer; 503 (`Retry-After`) naming each that does not."""
    state = request.app.state
    return await http_health.readiness(
        {"database": http_health.database(state.engine), "nats": http_health.message_bus(state.nats)}
    )
