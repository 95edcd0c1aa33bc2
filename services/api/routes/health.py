from __future__ import annotations

from fastapi import APIRouter, Request

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    """Liveness and NATS connectivity; no authentication."""
    nc = request.app.state.nats
    return {"status": "ok", "nats": "connected" if nc.is_connected else "disconnected"}
