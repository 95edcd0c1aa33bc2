"""Readiness of an HTTP service: whether each dependency answers now, by name.

`/healthz` (liveness) asks nothing of anyone: a process whose database is down is alive and must not be
restarted for it. `/readyz` asks each dependency with a short timeout and answers 200 with every one `up`,
or 503 (`Retry-After`, the usual error body) naming the ones that are down, so a load balancer stops
sending traffic and an operator sees why. Both recover by themselves when the dependency comes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from nats.aio.client import Client as NATS
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import JSONResponse, Response

from services.common.http_errors import RETRY_AFTER, error_response

# Raises when its dependency does not answer.
Check = Callable[[], Awaitable[None]]
CHECK_TIMEOUT_SECONDS = 2.0


def database(engine: AsyncEngine) -> Check:
    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check


def message_bus(nc: NATS) -> Check:
    async def check() -> None:
        if not nc.is_connected:
            raise ConnectionError("not connected (reconnecting)")
        await nc.flush(timeout=CHECK_TIMEOUT_SECONDS)

    return check


async def _status(check: Check) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        return f"down: {type(exc).__name__}"
    return "up"


async def readiness(checks: Mapping[str, Check]) -> Response:
    statuses = dict(zip(checks, await asyncio.gather(*map(_status, checks.values())), strict=True))
    down = sorted(name for name, status in statuses.items() if status != "up")
    if down:
        detail = {"down": down, "dependencies": statuses}
        return error_response(503, "not_ready", detail, RETRY_AFTER)
    return JSONResponse({"status": "ready", "dependencies": statuses})


READINESS_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "Every dependency answers: `{status: ready, dependencies: {name: up}}`."},
    503: {"description": "`{error: not_ready, detail: {down: [names], dependencies: {name: status}}}`."},
}
